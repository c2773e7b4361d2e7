"""``python -m tuning.search`` in-process: the CLI, a 3-trial CPU study, infeasible budgets,
multi-objective mode; and the objective's latency gate and pruning callback with fakes."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from tuning.objective import LatencyCache, LatencySettings, Objective, PruningCallback, SearchContext
from tuning.search import build_parser, main
from tuning.space import DEFAULT_SPACE, SearchSpace
from tuning_helpers import TEACHER_HPARAMS, search_args


def _journal_study(out: Path) -> optuna.Study:
    from tuning.storage import open_storage

    storage = open_storage(None, out).storage
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


def test_help_explains_every_flag(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for action in build_parser()._actions:
        if action.option_strings:
            assert action.help and action.help != argparse.SUPPRESS, action.option_strings
            assert action.option_strings[-1] in text
    for flag in ("--dataset", "--teacher", "--latency-budget-ms", "--latency-batch", "--latency-mode", "--n-trials",
                 "--storage", "--study-name", "--out", "--timeout", "--seed", "--space", "--multi-objective",
                 "--pruner", "--epochs", "--device", "--latency-dtype", "--data-dir"):
        assert flag in text


def test_print_space_and_missing_arguments(capsys):
    assert main(["--print-space"]) == 0
    assert capsys.readouterr().out == DEFAULT_SPACE
    assert main(["--latency-budget-ms", "1"]) == 2
    assert "--dataset is required" in capsys.readouterr().err
    assert main(["--dataset", "synthetic", "--latency-budget-ms", "-1"]) == 2  # argparse usage error


def test_cpu_study_of_three_trials(tmp_path, tiny_space, capsys):
    """The CI study: synthetic data, a teacher trained on the fly, 3 trials on the CPU, report, plots, export;
    running the same command again adds no trial (--n-trials is the study's target)."""
    out = tmp_path / "study"
    teacher = [f"--teacher-hparam={k}={v}" for k, v in TEACHER_HPARAMS.items()]
    args = [a for a in search_args(out, tiny_space, None, n_trials=3) if a != "--no-plots"]
    args += ["--teacher-epochs", "1", *teacher, "--study-name", "ci"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert (out / "teacher" / "best.pt").is_file()
    assert report["counts"]["total"] == 3 and report["counts"]["complete"] == 3
    lat = report["settings"]["latency"]
    assert lat["device_kind"] == "cpu" and lat["mode"] == "eager" and lat["requested_mode"] == "cuda-graph"
    assert "CPU" in lat["label"] and "no CUDA device" in lat["note"]
    assert "measured on **CPU**" in (out / "report.md").read_text()
    maes = [t["val_mae"] for t in report["trials"]]
    assert all(m is not None and math.isfinite(m) for m in maes)
    assert all(0 < t["latency_ms"] < 1000.0 for t in report["trials"])
    assert report["best"]["val_mae"] == min(maes)
    assert report["export"]["trial"] == report["best"]["number"]
    for png in ("history.png", "pareto_front.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["plots"]["importances"] == "importances.png" or report["plots"]["importances"].startswith("skipped")
    # each trial reported its epochs for pruning and kept its checkpoint
    study = _journal_study(out)
    _check_the_export_is_the_best_checkpoint(out, study, report["export"])
    from stgkd.engine.checkpoint import load_checkpoint

    for t in study.trials:
        assert sorted(t.intermediate_values) == [1]
        assert Path(t.user_attrs["checkpoint"]).is_file()
        trial_dir = Path(t.user_attrs["checkpoint"]).parent  # a run of stgkd.engine.run, kept small
        assert not (trial_dir / "last.pt").exists() and (trial_dir / "metrics.json").is_file()
        saved = load_checkpoint(t.user_attrs["checkpoint"])
        assert saved["tuning"] == {"study": "ci", "trial": t.number, "params": t.user_attrs["config"]}
        assert saved["distill"] and saved["teacher_checkpoint"] == str((out / "teacher" / "best.pt").resolve())
        assert t.constraints["latency"] == pytest.approx(t.user_attrs["latency_ms"] - 1000.0)
    capsys.readouterr()

    exported = (out / "best_student.pt").stat().st_mtime_ns
    assert main([*args, "--no-plots"]) == 0
    assert "reusing the teacher" in capsys.readouterr().err
    assert len(_journal_study(out).trials) == 3
    assert (out / "best_student.pt").stat().st_mtime_ns == exported  # same best: not exported again


def _check_the_export_is_the_best_checkpoint(out: Path, study: optuna.Study, export: dict) -> None:
    """``best_student.pt``, loaded as a user loads it, forecasts the test windows in raw units as the
    lowest-validation-MAE trial's checkpoint does, and the export's test MAE is that of these forecasts."""
    from stgkd import Forecaster
    from stgkd.data.datasets import load_dataset
    from stgkd.data.rebuild import prepare_from_meta
    from stgkd.engine.checkpoint import load_checkpoint, model_from_checkpoint

    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best = min(complete, key=lambda t: t.user_attrs["val_mae"])
    payload = load_checkpoint(best.user_attrs["checkpoint"])
    prepared = prepare_from_meta(payload["data"], dataset=load_dataset("synthetic", num_nodes=5, num_days=1))  # DATA_ARGS
    test = prepared.test
    batch = test.batch(torch.arange(len(test)))
    with torch.no_grad():
        want = prepared.scaler.inverse_transform(model_from_checkpoint(payload).eval()(batch.x)).numpy()
    rows = test.starts[:, None] + torch.arange(prepared.in_steps)  # (S, T_in) input steps of each window
    history = prepared.data.values[:, :, 0][rows.numpy()]  # raw readings, NaN where missing
    stamps = np.asarray(prepared.data.timestamps)[rows.numpy()]
    fc = Forecaster.load(out / "best_student.pt", compile=False)  # the plain export, run uncompiled
    assert fc.backend == "torch.export" and fc.metadata["model"] == payload["model"]
    got = fc.predict(history, timestamps=stamps)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    mae = float(np.abs(got - batch.y.numpy())[batch.mask.numpy()].mean())
    assert export["trial"] == best.number and export["test"]["avg"]["mae"] == pytest.approx(mae, rel=1e-4)


def test_over_budget_trials_are_infeasible_and_never_trained(tmp_path, tiny_space, tiny_teacher, capsys):
    out = tmp_path / "study"
    args = search_args(out, tiny_space, tiny_teacher, n_trials=3, budget=1e-6, extra=["--study-name", "s"])
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "no trial met the latency budget" in err and "teacher cache" not in err  # the teacher never ran
    study = _journal_study(out)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 3
    for t in study.trials:
        assert t.user_attrs["status"] == "infeasible"
        assert t.constraints["latency"] == pytest.approx(t.user_attrs["latency_ms"] - 1e-6) and t.constraints["latency"] > 0
        assert t.intermediate_values == {}  # no epoch ran
    assert not (out / "trials").exists() and not (out / "best_student.pt").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["infeasible"] == 3 and report["best"] is None and report["pareto_front"] == []
    # the same study with another budget is refused (feasibility would mean two things)
    assert main(search_args(out, tiny_space, tiny_teacher, n_trials=3, budget=2e-6, extra=["--study-name", "s"])) == 2
    assert "budget_ms" in capsys.readouterr().err


def test_multi_objective_reports_the_pareto_front(tmp_path, tiny_space, tiny_teacher):
    out = tmp_path / "study"
    assert main(search_args(out, tiny_space, tiny_teacher, n_trials=2, extra=["--multi-objective"])) == 0
    study = _journal_study(out)
    assert len(study.directions) == 2
    report = json.loads((out / "report.json").read_text())
    assert report["objectives"] == ["val MAE", "latency (ms)"]
    front = {t["number"] for t in report["pareto_front"]}
    assert front == {t.number for t in study.best_trials} and front
    for t in study.trials:
        assert t.values == [pytest.approx(t.user_attrs["val_mae"]), pytest.approx(t.user_attrs["latency_ms"])]
    assert (out / "best_student.pt").is_file()
    # each student of the front scored on the test split, as `stgkd evaluate` scores its checkpoint (the
    # accuracy-latency chart draws the front from these)
    from stgkd.data.datasets import load_dataset
    from stgkd.engine.evaluate import evaluate_checkpoint

    data = load_dataset("synthetic", num_nodes=5, num_days=1)  # DATA_ARGS
    for t in report["pareto_front"]:
        want = evaluate_checkpoint(t["checkpoint"], split="test", dataset=data, device="cpu", teacher=False).metrics
        assert set(t["test"]) == set(want)
        for h in want:
            assert t["test"][h]["mae"] == pytest.approx(want[h]["mae"], rel=1e-5)
    assert "test MAE avg" in (out / "report.md").read_text()
    # a rerun that trains nothing keeps the scores
    assert main(search_args(out, tiny_space, tiny_teacher, n_trials=2, extra=["--multi-objective"])) == 0
    again = json.loads((out / "report.json").read_text())
    assert [t["test"] for t in again["pareto_front"]] == [t["test"] for t in report["pareto_front"]]


def test_key_value_arguments_read_values_as_json_else_strings():
    from tuning.cli import _key_value

    assert _key_value("num_nodes=5") == ("num_nodes", 5)
    assert _key_value("lr=1e-3") == ("lr", 0.001)
    assert _key_value("adaptive=true") == ("adaptive", True) and _key_value("order=null") == ("order", None)
    assert _key_value("sizes=[1, 2]") == ("sizes", [1, 2])
    assert _key_value("graph_op=dense") == ("graph_op", "dense") and _key_value("path=a/b.json") == ("path", "a/b.json")
    assert _key_value("name=") == ("name", "") and _key_value("expr=a=b") == ("expr", "a=b")
    with pytest.raises(argparse.ArgumentTypeError, match="expected KEY=VALUE"):
        _key_value("num_nodes")


@pytest.mark.slow
def test_a_study_on_the_default_space_needs_no_pyyaml(tmp_path, tiny_space, tiny_teacher, monkeypatch, capsys):
    import subprocess

    from tuning_helpers import PYTHON, REPO, subprocess_env

    # importing the tuning modules asks for no YAML library
    code = ("import sys; sys.modules['yaml'] = None\n"
            "import tuning.search, tuning.space, tuning.objective, tuning.report, tuning.storage, tuning.cli, "
            "tuning.export, tuning.progress, tuning.samplers, tuning.teacher\n")
    done = subprocess.run([PYTHON, "-c", code], cwd=REPO, env=subprocess_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # nor does a study on the default space (here in-process, with `import yaml` failing)
    monkeypatch.setitem(sys.modules, "yaml", None)
    out = tmp_path / "study"
    args = search_args(out, tiny_space, tiny_teacher, n_trials=1)
    del args[args.index("--space"):args.index("--space") + 2]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["complete"] == 1
    assert report["settings"]["space"] == SearchSpace.default().to_dict()
    # a new study's first trial is stgkd distill's defaults (the rank, 5 sensors here, is off the space's grid)
    first = _journal_study(out).trials[0]
    assert first.user_attrs["start"] == "stgkd distill's defaults"
    assert {k: first.params[k] for k in ("family", "hidden", "student.mixing", "w_out", "w_feat", "w_rel", "lr")} == {
        "family": "stgru", "hidden": 32, "student.mixing": "last", "w_out": 1.0, "w_feat": 0.1, "w_rel": 0.1, "lr": 1e-2}
    capsys.readouterr()
    # a YAML --space file, though, is refused with what to do
    assert main(search_args(out, tiny_space, tiny_teacher, n_trials=1)) == 2
    assert "needs PyYAML, which is not installed; pip install pyyaml" in capsys.readouterr().err


# ------------------------------------------------------------------------- objective with fakes
def _fake_ctx(tmp_path, multi=False) -> SearchContext:
    prepared = SimpleNamespace(num_nodes=4, adj=np.eye(4, dtype=np.float32), in_steps=3, out_steps=2, in_channels=2)
    return SearchContext(prepared=prepared, teacher=None, teacher_path=tmp_path / "t.pt", teacher_sha256="0",
                         cache=None, device="cpu", epochs=3, out_dir=tmp_path, multi_objective=multi, heartbeat=True)


def test_objective_measures_once_per_architecture_and_skips_training_over_budget(tmp_path):
    space = SearchSpace.from_mapping(
        {"family": "gru", "hidden": {"type": "categorical", "choices": [4, 64]}, "layers": 1}, source="test"
    )
    measured: list[int] = []

    def fake_measure(model, settings):  # latency grows with width: hidden 4 -> 0.4 ms, 64 -> 6.4 ms
        measured.append(model.config()["hparams"]["hidden"])
        return {"median_ms": model.config()["hparams"]["hidden"] / 10, "device_kind": "cpu", "device_name": "fake"}

    trained: list[int] = []

    def fake_train(ctx, trial, params, callback, ckpt):
        trained.append(trial.number)
        for epoch in (1, 2, 3):
            callback.on_epoch_end(None, epoch, {"val_mae": 10.0 / epoch})
        return {"val_mae": 10.0 / 3, "epochs_run": 3}

    settings = LatencySettings(budget_ms=1.0, batch=1, mode="eager", dtype="fp32", device="cpu", device_name="fake",
                               iters=10)  # no quick first timing (see the next test)
    objective = Objective(_fake_ctx(tmp_path), space, LatencyCache(settings, fake_measure), train=fake_train)
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    for hidden in (4, 64, 4, 64):
        study.enqueue_trial({"hidden": hidden})
    study.optimize(objective, n_trials=4)
    # each architecture is timed once; one over the budget twice more (contention only adds time)
    assert measured == [4, 64, 64, 64]
    assert study.trials[1].user_attrs["latency"]["medians_ms"] == [6.4, 6.4, 6.4]
    assert trained == [0, 2]  # the 6.4 ms students were never trained
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE, TrialState.PRUNED]
    assert [t.constraints["latency"] for t in study.trials] == pytest.approx([-0.6, 5.4, -0.6, 5.4])
    assert [t.user_attrs["latency_source"] for t in study.trials] == ["measured", "measured", "process", "process"]
    assert study.best_value == pytest.approx(10.0 / 3)
    assert study.trials[0].intermediate_values == pytest.approx({1: 10.0, 2: 5.0, 3: 10.0 / 3})
    # a new process (fresh cache) reuses the study's measurements instead of timing again
    fresh = Objective(_fake_ctx(tmp_path), space, LatencyCache(settings, fake_measure), train=fake_train)
    study.enqueue_trial({"hidden": 64})
    study.optimize(fresh, n_trials=1)
    assert measured == [4, 64, 64, 64] and study.trials[-1].user_attrs["latency_source"] == "study"


def test_a_busy_moment_does_not_make_an_architecture_infeasible(tmp_path):
    readings = iter([9.0, 0.8])  # first timing disturbed by another process, second one clean
    settings = LatencySettings(budget_ms=1.0, batch=1, mode="eager", dtype="fp32", device="cpu", device_name="fake",
                               iters=10)
    cache = LatencyCache(settings, lambda m, s: {"median_ms": next(readings), "device_kind": "cpu", "device_name": "f"})
    from stgkd.nn import build

    _, result, source = cache.get(build("gru", num_nodes=3, hidden=4))
    assert source == "measured" and result["median_ms"] == 0.8 and result["medians_ms"] == [9.0, 0.8]


def test_far_over_budget_is_decided_by_a_quick_timing():
    from stgkd.nn import build

    calls: list[int] = []

    def fake(model, settings):
        calls.append(settings.iters)
        return {"median_ms": model.config()["hparams"]["hidden"] / 10, "device_kind": "cpu", "device_name": "f"}

    settings = LatencySettings(budget_ms=1.0, batch=1, mode="eager", dtype="fp32", device="cpu", device_name="fake",
                               iters=100, warmup=10)
    cache = LatencyCache(settings, fake)
    _, far, _ = cache.get(build("gru", num_nodes=3, hidden=64))  # 6.4 ms > 5 x budget: quick timings only
    assert calls == [10, 10, 10] and far["quick"] and far["median_ms"] == 6.4
    calls.clear()
    _, near, _ = cache.get(build("gru", num_nodes=3, hidden=20))  # 2 ms: quick says "maybe", full timing decides
    assert calls == [10, 100, 100, 100] and "quick" not in near and near["medians_ms"] == [2.0, 2.0, 2.0]
    calls.clear()
    _, fits, _ = cache.get(build("gru", num_nodes=3, hidden=8))
    assert calls == [10, 100] and fits["median_ms"] == 0.8


def test_a_diverging_trial_fails_alone(tmp_path):
    from stgkd.errors import ConfigError
    from tuning.objective import TrialFailed

    def diverge(ctx, trial, params, callback, ckpt):
        raise ConfigError("epoch 1: the training loss is nan; lower --lr or check the data")

    settings = LatencySettings(budget_ms=100.0, batch=1, mode="eager", dtype="fp32", device="cpu", device_name="fake")
    space = SearchSpace.from_mapping({"family": "gru", "hidden": 4, "layers": 1}, source="test")
    measure = lambda model, s: {"median_ms": 1.0, "device_kind": "cpu", "device_name": "fake"}  # noqa: E731
    study = optuna.create_study()
    study.optimize(Objective(_fake_ctx(tmp_path), space, LatencyCache(settings, measure), train=diverge),
                   n_trials=2, catch=(TrialFailed,))
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]
    assert "training loss is nan" in study.trials[0].user_attrs["note"]


def test_pruning_callback_prunes_a_trial_worse_than_the_median():
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2))
    for curve in ([3.0, 2.0], [3.2, 2.2]):  # two finished trials: median at epoch 2 is 2.1
        trial = study.ask()
        cb = PruningCallback(trial)
        for epoch, v in enumerate(curve, start=1):
            cb.on_epoch_end(None, epoch, {"val_mae": v})
        study.tell(trial, curve[-1])
    trial = study.ask()
    cb = PruningCallback(trial)
    cb.on_epoch_end(None, 1, {"val_mae": 9.0})  # epoch 1 is warm-up: never pruned
    with pytest.raises(optuna.TrialPruned, match="epoch 2"):
        cb.on_epoch_end(None, 2, {"val_mae": 5.0})
    assert cb.curve == [9.0, 5.0]
    good = study.ask()
    cb = PruningCallback(good)
    cb.on_epoch_end(None, 1, {"val_mae": 3.0})
    cb.on_epoch_end(None, 2, {"val_mae": 2.0})  # better than the median: goes on
    with pytest.raises(optuna.TrialPruned, match="nan"):
        cb.on_epoch_end(None, 3, {"val_mae": float("nan")})


def test_sampler_is_seeded_per_trial_number():
    """Two workers (two sampler objects, one storage) with the same --seed draw different start-up points,
    and a single worker reproduces the same point for the same trial number."""
    from tuning.samplers import make_sampler

    def draw(study, sampler):
        study.sampler = sampler
        trial = study.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        study.tell(trial, x)
        return trial.number, x

    storage = optuna.storages.InMemoryStorage()
    shared = optuna.create_study(storage=storage, study_name="s")
    a, b = make_sampler("tpe", 7, False, 50), make_sampler("tpe", 7, False, 50)
    two_workers = [draw(shared, a), draw(shared, b), draw(shared, a), draw(shared, b)]
    assert len({x for _, x in two_workers}) == 4
    alone = optuna.create_study()
    single = [draw(alone, make_sampler("tpe", 7, False, 50)) for _ in range(4)]
    assert single == two_workers


def test_latency_settings_fall_back_to_cpu_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA present: no fallback to test")
    s = LatencySettings.resolve(budget_ms=0.1, batch=1, mode="cuda-graph", dtype="fp32", device="cuda")
    assert (s.device, s.device_kind, s.mode, s.requested_mode) == ("cpu", "cpu", "eager", "cuda-graph")
    assert "no CUDA device" in s.note and s.label.startswith("CPU eager")
    from stgkd.errors import ConfigError

    with pytest.raises(ConfigError, match="--latency-mode"):
        LatencySettings.resolve(budget_ms=0.1, batch=1, mode="turbo", dtype="fp32")


def test_a_student_this_network_cannot_take_fails_its_trial_not_the_study(tmp_path):
    from tuning.objective import TrialFailed, build_student

    ctx = _fake_ctx(tmp_path)  # 4 sensors
    with pytest.raises(TrialFailed, match=r"stgru.*rank must be in 1\.\.4"):
        build_student(ctx, {"family": "stgru", "hidden": 8, "student.rank": 8})
    assert build_student(ctx, {"family": "stgru", "hidden": 8, "student.rank": 4}).num_nodes == 4
    with pytest.raises(Exception, match="does not take") as info:  # a space that names no such argument stops the study
        build_student(ctx, {"family": "stgru", "hidden": 8, "student.no_such_thing": 1})
    assert not isinstance(info.value, TrialFailed)


def _real_ctx(tmp_path, teacher_path) -> SearchContext:
    """A study's shared context on the tiny teacher's data, as tuning.search builds it."""
    from stgkd.data.datasets import load_dataset
    from stgkd.data.rebuild import prepare_from_meta
    from stgkd.engine.checkpoint import load_checkpoint, model_from_checkpoint

    payload = load_checkpoint(teacher_path)
    data = load_dataset("synthetic", num_nodes=5, num_days=1)  # the tiny teacher's (conftest)
    prepared = prepare_from_meta(payload["data"], dataset=data, device="cpu")
    teacher = model_from_checkpoint(payload, device="cpu")
    for p in teacher.parameters():
        p.requires_grad_(False)
    return SearchContext(prepared=prepared, teacher=teacher, teacher_path=teacher_path, teacher_sha256="0",
                         cache=None, device="cpu", epochs=2, out_dir=tmp_path, limit_batches=2)


def test_a_trial_keeps_a_slim_checkpoint_and_a_pruned_one_nothing(tmp_path, tiny_teacher):
    """A finished trial's run directory holds its best weights without what only resuming reads; a pruned
    trial's (pruned inside the run, after its first epoch wrote checkpoints) is removed."""
    from stgkd.engine.checkpoint import load_checkpoint
    from tuning.objective import train_student

    ctx = _real_ctx(tmp_path, tiny_teacher)
    params = {"family": "gru", "hidden": 4, "layers": 1, "lr": "1e-3", "w_feat": 0.0, "w_rel": 0.0,
              "tau": "5e-1", "augment": "none"}  # text numbers, as YAML 1.1 reads 1e-3
    done = tmp_path / "trials" / "00000" / "best.pt"
    out = train_student(ctx, None, params, SimpleNamespace(), done)
    assert out["epochs_run"] == 2 and math.isfinite(out["val_mae"])
    saved = load_checkpoint(done)
    assert not {"optimizer", "scheduler", "rng", "callbacks"} & set(saved) and saved["train_config"]["lr"] == 1e-3
    assert saved["distill"]["tau"] == 0.5 and not (done.parent / "last.pt").exists()

    class PruneAfterFirstEpoch:
        def on_epoch_end(self, trainer, epoch, logs):
            raise optuna.TrialPruned("pruned at epoch 1")

    pruned = tmp_path / "trials" / "00001" / "best.pt"
    with pytest.raises(optuna.TrialPruned):
        train_student(ctx, None, params, PruneAfterFirstEpoch(), pruned)
    assert not pruned.parent.exists()
