"""Distillation runs end to end: the oracle check, staged distillation, the gradient-share record and
the fidelity metric (training logs and ``stgkd evaluate``)."""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest
import torch

from stgkd.cli import main
from stgkd.data.rebuild import prepare_from_meta
from stgkd.data.synthetic import generate
from stgkd.data.windows import prepare
from stgkd.distill import DistillationObjective, DistillConfig, TeacherCache
from stgkd.engine import LambdaCallback, TrainConfig, Trainer, distill_student, load_checkpoint, seed_everything
from stgkd.engine.callbacks import measure_gradient_share
from stgkd.engine.checkpoint import model_from_checkpoint
from stgkd.engine.steps import DistillStep, SupervisedStep, make_distill_step
from stgkd.nn import build

KD = {"w_out": 1.0, "w_feat": 0.5, "w_rel": 0.5}


def _cfg(**kw):
    base = dict(epochs=1, batch_size=32, device="cpu", seed=0, patience=0)
    base.update(kw)
    return TrainConfig(**base)


# ---------------------------------------------------------------- oracle


@pytest.mark.parametrize("tau_relative", [False, True])
def test_distilling_from_a_cache_of_the_truth_is_plain_training(tau_relative):
    """A teacher that forecasts the truth exactly, trusted uniformly (tau = inf), with w_sup = 0 and
    w_out = 1 in raw units: L_out is the plain MAE, so the student trains as `train` would train it."""
    data, _ = generate(num_nodes=5, num_days=2, seed=0, missing_rate=0.0)
    prepared = prepare(data)
    everything = prepared.train.batch(torch.arange(len(prepared.train)))
    assert bool(everything.mask.all())  # no missing readings: L_out's mean over every element is the masked MAE
    cache = TeacherCache(prepared.scaler.transform(everything.y), {})  # "teacher" forecasts, z-scored
    dcfg = DistillConfig(w_sup=0.0, w_out=1.0, w_feat=0.0, w_rel=0.0, tau=math.inf, tau_relative=tau_relative,
                         units="raw")
    cfg = _cfg(epochs=2, limit_batches=3)

    def fit(make_step):
        seed_everything(cfg.seed)
        model = build("gcn-gru", num_nodes=prepared.num_nodes, graph=prepared.adj, in_channels=prepared.in_channels,
                      hidden=8)
        trainer = Trainer(model, prepared, config=cfg, step=make_step(model))
        trainer.fit()
        return model, trainer.history

    plain, plain_log = fit(lambda m: SupervisedStep(m, prepared.scaler))
    oracle, oracle_log = fit(lambda m: DistillStep(m, DistillationObjective(dcfg), cache, prepared.scaler))
    a, b = plain.state_dict(), oracle.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert [h["val_mae"] for h in oracle_log] == pytest.approx([h["val_mae"] for h in plain_log], rel=1e-5)
    assert [h["train_out"] for h in oracle_log] == pytest.approx([h["train_mae"] for h in plain_log], rel=1e-4)
    assert all(h["train_trust_ess"] == pytest.approx(1.0) for h in oracle_log)


# ---------------------------------------------------------------- stages


def test_staged_distillation_switches_terms_at_the_right_epochs(teacher_ckpt, tmp_path):
    seen = []

    def record(trainer, epoch):
        seen.append((epoch, trainer.step_module.objective.weights))

    result = distill_student(teacher_ckpt, "gcn-gru", tmp_path / "st", hparams={"hidden": 8}, progress=False,
                             config=_cfg(epochs=5, limit_batches=1),
                             distill={**KD, "stages": "hint:0.2, kd:0.6, fine:0.2"},
                             callbacks=[LambdaCallback(on_epoch_start=record)])
    # 5 epochs: hint ends after round(1.0) = 1, kd after round(4.0) = 4, fine takes epoch 5
    assert [h["stage"] for h in result.history] == ["hint", "kd", "kd", "kd", "fine"]
    on = {"hint": {"sup": 1.0, "out": 0.0, "feat": 0.5, "rel": 0.0},
          "kd": {"sup": 1.0, "out": 1.0, "feat": 0.0, "rel": 0.5},
          "fine": {"sup": 1.0, "out": 0.0, "feat": 0.0, "rel": 0.0}}
    assert seen == [(h["epoch"], on[h["stage"]]) for h in result.history]
    for h in result.history:  # what the epoch trained on
        assert (h["train_out"] > 0, h["train_feat"] > 0, h["train_rel"] > 0) == tuple(
            on[h["stage"]][k] > 0 for k in ("out", "feat", "rel"))
        assert ("train_trust_ess" in h) == (h["stage"] == "kd")
    ckpt = load_checkpoint(tmp_path / "st" / "last.pt")
    assert ckpt["distill"]["stages"] == "hint:0.2,kd:0.6,fine:0.2"
    lines = [json.loads(x) for x in (tmp_path / "st" / "log.jsonl").read_text().splitlines()]
    assert [x["stage"] for x in lines] == ["hint", "kd", "kd", "kd", "fine"]


def test_a_resumed_staged_run_picks_up_its_stage(teacher_ckpt, tmp_path):
    distill = {**KD, "stages": "hint:0.5,fine:0.5"}
    distill_student(teacher_ckpt, "gcn-gru", tmp_path, hparams={"hidden": 8}, progress=False, distill=distill,
                    config=_cfg(epochs=1, limit_batches=1))
    resumed = distill_student(teacher_ckpt, "gcn-gru", tmp_path, hparams={"hidden": 8}, progress=False, resume=True,
                              config=_cfg(epochs=4, limit_batches=1))
    # the schedule is the checkpoint's, over the resumed run's 4 epochs: hint 1-2, fine 3-4
    assert [h["stage"] for h in resumed.history] == ["hint", "hint", "fine", "fine"]


# ---------------------------------------------------------------- gradient share


def test_gradient_share_is_recorded_at_the_first_and_last_epochs(teacher_ckpt, tmp_path):
    result = distill_student(teacher_ckpt, "gcn-gru", tmp_path, hparams={"hidden": 8}, progress=False, distill=KD,
                             config=_cfg(epochs=3, limit_batches=1))
    marked = [(h["epoch"], h["grad_share"]["at"]) for h in result.history if "grad_share" in h]
    assert marked == [(1, ["first"]), (3, ["last"])]
    first = result.grad_share["first"]
    assert set(first["norm"]) == {"sup", "out", "feat", "rel"} and first["epoch"] == 1
    assert sum(first["share"].values()) == pytest.approx(1.0)
    assert all(v > 0 for v in first["norm"].values()) and first["total"] > 0
    assert set(first["cos_sup"]) == {"out", "feat", "rel"} and all(-1 <= v <= 1 for v in first["cos_sup"].values())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["grad_share"]["last"]["epoch"] == 3 and metrics["grad_share"]["first"] == first
    lines = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert lines[0]["grad_share"]["share"] == pytest.approx(first["share"]) and "grad_share" not in lines[1]


def test_one_epoch_run_records_one_gradient_share_as_first_and_last(teacher_ckpt):
    result = distill_student(teacher_ckpt, "gcn-gru", None, hparams={"hidden": 8}, progress=False, distill=KD,
                             config=_cfg(epochs=1, limit_batches=1))
    assert result.history[0]["grad_share"]["at"] == ["first", "last"]
    assert result.grad_share["first"] is result.grad_share["last"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: cuDNN's GRU takes no backward pass in eval mode")
def test_gradient_share_of_a_recurrent_student_on_cuda(teacher_ckpt):
    """The measurement runs in eval mode; on CUDA it must not reach cuDNN's RNN backward, which refuses
    eval mode (the week's GPU suite stopped there)."""
    payload = load_checkpoint(teacher_ckpt)
    prepared = prepare_from_meta(payload["data"], device="cuda")
    teacher = model_from_checkpoint(payload).to("cuda")
    student = build("gcn-gru", num_nodes=prepared.num_nodes, graph=prepared.adj, in_channels=prepared.in_channels,
                    hidden=8).to("cuda")
    step, _ = make_distill_step(student, teacher, prepared, DistillConfig(**KD), device="cuda")
    record = measure_gradient_share(step, prepared.train, list(student.parameters()), batches=1, batch_size=16,
                                    device="cuda")
    assert record["total"] > 0 and set(record["norm"]) == {"sup", "out", "feat", "rel"}


def test_measure_gradient_share_matches_autograd_and_leaves_training_alone(teacher_ckpt):
    payload = load_checkpoint(teacher_ckpt)
    prepared = prepare_from_meta(payload["data"])
    teacher = model_from_checkpoint(payload)
    torch.manual_seed(0)
    student = build("gcn-gru", num_nodes=prepared.num_nodes, graph=prepared.adj, in_channels=prepared.in_channels,
                    hidden=8, dropout=0.5)
    step, _ = make_distill_step(student, teacher, prepared, DistillConfig(**KD), device="cpu")
    params = list(student.parameters())
    rng = torch.get_rng_state()
    record = measure_gradient_share(step, prepared.train, params, batches=1, batch_size=16)
    assert torch.equal(torch.get_rng_state(), rng) and all(p.grad is None for p in params)
    assert step.training and record["batches"] == 1 and record["windows"] == 16
    # by hand, on the same 16 evenly spaced windows in eval mode: the objective's UNWEIGHTED terms L_k
    # (student forward, teacher from the cache), each weighted here with the weights this test configured
    weights = {"sup": 1.0, **{k[2:]: v for k, v in KD.items()}}  # w_sup keeps its default of 1
    idx = torch.linspace(0, len(prepared.train) - 1, 16).round().long()
    batch = prepared.train.batch(idx)
    step.eval()
    out, feats = student(batch.x, return_features=True)
    t_out, t_feats = step.cache.lookup(batch.index)
    terms, _ = step.objective.terms(out, feats, batch, t_out, t_feats, prepared.scaler)
    assert set(terms) == set(weights) == {"sup", "out", "feat", "rel"}

    def flat_grad(loss):
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])

    g = {k: flat_grad(v) for k, v in terms.items()}  # gradients of the unweighted terms
    for name in terms:  # ||grad(w_k L_k)|| = w_k ||grad L_k||
        assert record["norm"][name] == pytest.approx(weights[name] * float(g[name].norm()), rel=1e-4), name
    assert record["norm"]["feat"] == pytest.approx(0.5 * float(g["feat"].norm()), rel=1e-4)  # w_feat = 0.5
    # the total is the norm of the gradient of the loss training descends (the step's own forward)
    loss, _, _ = step(batch.x, batch.y, batch.mask, batch.index)
    assert record["total"] == pytest.approx(float(flat_grad(loss).norm()), rel=1e-4)
    weighted = {k: weights[k] * float(g[k].norm()) for k in g}
    for name in terms:
        assert record["share"][name] == pytest.approx(weighted[name] / sum(weighted.values()), rel=1e-4)
    for name in ("out", "feat", "rel"):  # a positive weight leaves the direction alone
        cos = float(torch.nn.functional.cosine_similarity(g[name], g["sup"], dim=0))
        assert record["cos_sup"][name] == pytest.approx(cos, rel=1e-4, abs=1e-6)
    step.train()


# ---------------------------------------------------------------- fidelity


def test_fidelity_to_the_teacher_is_logged_every_epoch(teacher_ckpt, tmp_path):
    result = distill_student(teacher_ckpt, "gcn-gru", tmp_path, hparams={"hidden": 8}, progress=False, distill=KD,
                             config=_cfg(epochs=2, limit_batches=1))
    assert all(h["val_fidelity_mae"] > 0 and set(h["val_fidelity"]) >= {"avg", "60min"} for h in result.history)
    # by hand: the best weights' masked MAE to the teacher's raw forecasts on the validation windows
    payload = load_checkpoint(teacher_ckpt)
    teacher = model_from_checkpoint(payload)
    val = result.data.val.batch(torch.arange(len(result.data.val)))
    with torch.no_grad():
        t = result.data.scaler.inverse_transform(teacher(val.x))
        s = result.data.scaler.inverse_transform(result.model(val.x))
    expected = (s - t).abs()[val.mask].double().mean().item()
    best = next(h for h in result.history if h["epoch"] == result.best_epoch)
    assert best["val_fidelity_mae"] == pytest.approx(expected, rel=1e-4)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["val_fidelity"]["avg"]["mae"] == pytest.approx(expected, rel=1e-4)


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_evaluate_compares_a_distilled_student_with_its_teacher(teacher_ckpt, tmp_path):
    distill_student(teacher_ckpt, "gcn-gru", tmp_path / "st", hparams={"hidden": 8}, progress=False, distill=KD,
                    config=_cfg(epochs=1, limit_batches=1))
    code, out, err = _run(["evaluate", str(tmp_path / "st" / "best.pt"), "--split", "val", "--out",
                           str(tmp_path / "ev"), "--device", "cpu", "--plot-windows", "50"])
    assert code == 0, err
    assert "fidelity" in out and "teacher" in out
    report = json.loads((tmp_path / "ev" / "metrics-val.json").read_text())
    assert report["teacher"]["checkpoint"] == str(teacher_ckpt.resolve())
    assert report["teacher"]["metrics"]["avg"]["mae"] == pytest.approx(
        load_checkpoint(teacher_ckpt)["metrics"]["avg"]["mae"], rel=1e-5)  # the teacher's own val MAE
    logged = json.loads((tmp_path / "st" / "metrics.json").read_text())["val_fidelity"]
    assert report["fidelity"]["avg"]["mae"] == pytest.approx(logged["avg"]["mae"], rel=1e-5)
    assert (tmp_path / "ev" / "forecast-val.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the plot carries the teacher as dashed lines
    from stgkd.engine.evaluate import evaluate_checkpoint

    ev = evaluate_checkpoint(tmp_path / "st" / "best.pt", split="val", device="cpu", keep_forecasts=7)
    assert ev.teacher_forecasts.shape == ev.forecasts.pred.shape == (7, 12, 6)
    assert evaluate_checkpoint(tmp_path / "st" / "best.pt", split="val", device="cpu", teacher=False).fidelity is None
    code, out, _ = _run(["evaluate", str(tmp_path / "st" / "best.pt"), "--split", "val", "--out",
                         str(tmp_path / "ev2"), "--device", "cpu", "--no-plot", "--no-teacher"])
    assert code == 0 and "fidelity" not in out
    assert "teacher" not in json.loads((tmp_path / "ev2" / "metrics-val.json").read_text())


def test_evaluate_takes_a_teacher_for_any_checkpoint_and_notes_a_missing_one(teacher_ckpt, tmp_path):
    from stgkd.engine.evaluate import evaluate_checkpoint

    ev = evaluate_checkpoint(teacher_ckpt, split="val", device="cpu", teacher=teacher_ckpt)
    assert ev.fidelity["avg"]["mae"] == pytest.approx(0.0, abs=1e-4)  # a model against itself
    payload = load_checkpoint(teacher_ckpt)
    payload["teacher_checkpoint"] = str(tmp_path / "gone.pt")
    torch.save(payload, tmp_path / "orphan.pt")
    ev = evaluate_checkpoint(tmp_path / "orphan.pt", split="val", device="cpu")
    assert ev.fidelity is None and "gone.pt" in ev.teacher_note
    assert np.isfinite(ev.metrics["avg"]["mae"])


def test_distill_flags_for_relative_tau_relation_norm_and_stages():
    import argparse

    from stgkd.commands.distill import add_arguments, distill_config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--teacher", "t.pt", "--out", "o"]
    fields = distill_config_from_args(parser.parse_args(
        base + ["--no-tau-relative", "--tau", "0.3", "--relation-norm", "none", "--stages", "hint:0.3,kd:0.7"]))
    assert fields == {"tau": 0.3, "tau_relative": False, "relation_norm": "none", "stages": "hint:0.3,kd:0.7"}
    cfg = DistillConfig.from_dict(fields)
    assert (cfg.tau_relative, cfg.relation_norm, cfg.stages) == (False, "none", "hint:0.3,kd:0.7")
    assert distill_config_from_args(parser.parse_args(base + ["--tau-relative"])) == {"tau_relative": True}
    assert distill_config_from_args(parser.parse_args(base)) == {}


def test_a_teacher_worse_than_the_student_on_validation_is_said_in_the_summary(teacher_ckpt, tmp_path, capsys):
    """The one-epoch teacher of the fixture is weak: a student trained a few epochs beats it on validation,
    and the summary says so (a teacher that knows less than the student can only pull it back)."""
    import json

    from stgkd.engine import TrainConfig
    from stgkd.engine.recipes import distill_student

    result = distill_student(teacher_ckpt, "gru", tmp_path / "st", hparams={"hidden": 8}, progress=False,
                             config=TrainConfig(epochs=6, device="cpu", seed=0),
                             distill={"w_out": 0.0, "w_feat": 0.0, "w_rel": 0.0})
    summary = json.loads((tmp_path / "st" / "metrics.json").read_text())
    teacher = summary["teacher_val_mae"]
    assert result.best_val_mae < teacher, "the case under test: the student must beat the fixture's teacher"
    assert summary["teacher_worse_than_student"].startswith(
        f"the teacher's validation MAE ({teacher:.4f}) is worse than this student's ({result.best_val_mae:.4f})")
    assert "note: the teacher's validation MAE" in capsys.readouterr().err
