"""Several teachers from checkpoints: the data check, the validation errors and weights, scoring an
ensemble against its members, and `stgkd distill` with several teachers and augmented views."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch

from stgkd.cli import main
from stgkd.data.rebuild import prepare_from_meta
from stgkd.distill import TeacherEnsemble, inverse_error_weights
from stgkd.engine import LambdaCallback, TrainConfig, distill_student, load_checkpoint, train_model
from stgkd.engine.checkpoint import save_checkpoint
from stgkd.engine.evaluate import evaluate_checkpoint, evaluate_split, predict_split
from stgkd.engine.teachers import load_teachers, score_ensemble, validation_errors
from stgkd.errors import ConfigError, DataError

from .conftest import TINY_TEACHER


@pytest.fixture(scope="module")
def second_teacher(tmp_path_factory, data_dir):
    """Another Graph WaveNet, another seed, the same data."""
    out = tmp_path_factory.mktemp("teacher2") / "gwn"
    train_model(str(data_dir), "graph-wavenet", out, hparams=TINY_TEACHER,
                config=TrainConfig(epochs=1, batch_size=64, limit_batches=3, device="cpu", seed=1), progress=False)
    return out / "best.pt"


@pytest.fixture(scope="module")
def peer_teacher(tmp_path_factory, data_dir):
    """A torch-geometric-temporal teacher (AGCRN) on the same data."""
    out = tmp_path_factory.mktemp("agcrn") / "agcrn"
    train_model(str(data_dir), "agcrn", out, hparams={"hidden": 8, "layers": 1, "embed_dim": 4},
                config=TrainConfig(epochs=1, batch_size=64, limit_batches=2, device="cpu", seed=0), progress=False)
    return out / "best.pt"


def _prepared(path):
    return prepare_from_meta(load_checkpoint(path)["data"], device="cpu")


def test_validation_errors_are_the_masked_mae_per_step_and_sensor(teacher_ckpt):
    prepared = _prepared(teacher_ckpt)
    teachers = load_teachers(teacher_ckpt)
    errors = validation_errors([teachers.model], prepared.val, prepared.scaler)
    fc = predict_split(teachers.model, prepared.val, prepared.scaler)
    by_hand = (np.abs(fc.pred - fc.true) * fc.mask).sum(0) / fc.mask.sum(0)  # (H, N)
    assert errors.shape == (1, prepared.out_steps, prepared.num_nodes)
    assert np.allclose(errors[0].numpy(), by_hand, rtol=1e-5)


def test_several_teachers_are_weighted_by_their_validation_errors(teacher_ckpt, second_teacher, peer_teacher):
    prepared = _prepared(teacher_ckpt)
    paths = [teacher_ckpt, second_teacher, peer_teacher]
    teachers = load_teachers(paths, prepared=prepared, combine="inverse-error", feature_teacher=second_teacher)
    ens = teachers.model
    assert isinstance(ens, TeacherEnsemble) and ens.feature_teacher == 1
    errors = validation_errors(list(ens.members), prepared.val, prepared.scaler)
    assert torch.allclose(ens.weights, inverse_error_weights(errors))
    assert not torch.allclose(ens.weights, torch.full_like(ens.weights, 1 / 3))  # the teachers differ
    x = prepared.val.batch(torch.arange(4)).x
    expected = sum(ens.weights[k] * m(x) for k, m in enumerate(ens.members))
    assert torch.allclose(ens(x), expected, atol=1e-6)
    record = teachers.record
    assert record["members"] == [str(p.resolve()) for p in paths] and record["combine"] == "inverse-error"
    assert record["feature_teacher"] == str(second_teacher.resolve())
    assert record["val_mae"][2] == pytest.approx(
        evaluate_split(ens.members[2], prepared.val, prepared.scaler)["avg"]["mae"], abs=1e-4)
    assert len(record["weights"]["per_step"]) == 3 and len(record["weights"]["per_step"][0]) == prepared.out_steps
    assert load_teachers(paths, prepared=prepared).model.weights.eq(1 / 3).all()  # mean by default
    with pytest.raises(ConfigError, match="not one of the teachers"):
        load_teachers(paths[:2], prepared=prepared, feature_teacher=peer_teacher)
    with pytest.raises(ConfigError, match="given twice"):
        load_teachers([teacher_ckpt, teacher_ckpt], prepared=prepared)


def test_teachers_trained_on_other_data_are_refused_naming_both_files(tmp_path, teacher_ckpt, second_teacher):
    for key, value in (("in_steps", 6), ("sensor_ids", ["a", "b", "c", "d", "e", "f"])):
        payload = load_checkpoint(second_teacher)
        payload["data"][key] = value
        other = save_checkpoint(tmp_path / f"other-{key}.pt", payload)
        with pytest.raises(DataError, match=key) as info:
            load_teachers([teacher_ckpt, other], prepared=_prepared(teacher_ckpt))
        assert str(teacher_ckpt.resolve()) in str(info.value) and str(other.resolve()) in str(info.value)
    payload = load_checkpoint(second_teacher)
    payload["scaler"] = {"mean": payload["scaler"]["mean"] + 1.0, "std": payload["scaler"]["std"]}
    other = save_checkpoint(tmp_path / "other-scaler.pt", payload)
    with pytest.raises(DataError, match="scale their inputs differently") as info:
        load_teachers([teacher_ckpt, other], prepared=_prepared(teacher_ckpt))
    assert str(other.resolve()) in str(info.value)


def test_score_ensemble_against_its_members(teacher_ckpt, second_teacher):
    prepared = _prepared(teacher_ckpt)
    ens = load_teachers([teacher_ckpt, second_teacher], prepared=prepared).model
    score = score_ensemble(ens, prepared, split="test")
    for name, member in zip(ens.names, ens.members):
        alone = evaluate_split(member, prepared.test, prepared.scaler)
        assert score.members[name]["avg"]["mae"] == pytest.approx(alone["avg"]["mae"])
        assert score.per_step_mae[name] == pytest.approx([m["mae"] for m in alone["per_step"]])
    assert score.ensemble["avg"]["mae"] == pytest.approx(evaluate_split(ens, prepared.test, prepared.scaler)["avg"]["mae"])
    best = score.best_member("60min")
    assert score.members[best]["60min"]["mae"] == min(m["60min"]["mae"] for m in score.members.values())
    assert score.gain("60min") == pytest.approx(score.members[best]["60min"]["mae"] - score.ensemble["60min"]["mae"])
    assert json.loads(json.dumps(score.to_dict()))["split"] == "test"
    val = [1.0, 0.5]  # the second member is better on validation: it is the best member, whatever the test says
    chosen = score_ensemble(ens, prepared, split="test", val_mae=val)
    assert chosen.best_member("60min") == ens.names[1] and chosen.to_dict()["best_member_chosen_on"] == "val"
    assert chosen.gain("avg") == pytest.approx(score.members[ens.names[1]]["avg"]["mae"] - score.ensemble["avg"]["mae"])


def test_evaluate_scores_several_checkpoints_as_one_ensemble(tmp_path, teacher_ckpt, second_teacher, data_dir):
    out = io.StringIO()
    args = ["evaluate", str(teacher_ckpt), str(second_teacher), "--teacher-combine", "inverse-error", "--device",
            "cpu", "--out", str(tmp_path), "--split", "val"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(args) == 0
    report = json.loads((tmp_path / "metrics-val-ensemble.json").read_text())
    members = [str(p.resolve()) for p in (teacher_ckpt, second_teacher)]
    assert list(report["members"]) == members and report["combine"] == "inverse-error"
    assert report["best_member_chosen_on"] == "val" and set(report["val_mae"]) == set(members)
    best = min(members, key=lambda m: report["val_mae"][m])
    assert report["best_member"]["avg"] == best and report["baselines"]
    assert report["gain_over_best"]["avg"] == pytest.approx(
        report["members"][best]["avg"]["mae"] - report["ensemble"]["avg"]["mae"])
    assert f"gain over the best member on validation ({best})" in out.getvalue()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(args + ["--sensors", "0"]) == 2
    assert "not an ensemble" in err.getvalue()


def test_distill_cli_with_several_teachers_records_them(tmp_path, data_dir, teacher_ckpt, second_teacher, peer_teacher):
    out = tmp_path / "st"
    args = ["distill", "--teacher", str(teacher_ckpt), str(second_teacher), str(peer_teacher), "--student", "gcn-gru",
            "--hidden", "8", "--out", str(out), "--epochs", "1", "--limit-batches", "2", "--device", "cpu",
            "--no-progress", "--teacher-combine", "inverse-error", "--augment", "noise,shift:2"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    members = [str(p.resolve()) for p in (teacher_ckpt, second_teacher, peer_teacher)]
    assert metrics["teachers"]["members"] == members and metrics["teachers"]["combine"] == "inverse-error"
    ckpt = load_checkpoint(out / "best.pt")
    assert ckpt["teachers"]["members"] == members
    assert ckpt["teacher_checkpoint"] == members[0]  # the feature teacher: the first by default
    assert ckpt["distill"]["augment"] == "noise:0.1,shift:2" and ckpt["distill"]["teacher_combine"] == "inverse-error"
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[0]["train_teacher_windows"] == 2 * 32 and log[0]["train_teacher_seconds"] > 0
    evaluation = evaluate_checkpoint(out / "best.pt")  # no fidelity to one member of three
    assert evaluation.teacher_checkpoint is None and "ensemble of 3 teachers" in evaluation.teacher_note
    assert evaluate_checkpoint(out / "best.pt", teacher=peer_teacher).teacher_checkpoint is not None
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        bad = main(args[:2] + [str(teacher_ckpt), str(second_teacher), "--feature-teacher", str(peer_teacher)]
                   + args[5:] + ["--overwrite"])
    assert bad == 2 and "--feature-teacher" in err.getvalue()


class _Crash(Exception):
    pass


def test_resumed_ensemble_distillation_with_views_matches_an_uninterrupted_run(tmp_path, teacher_ckpt, second_teacher):
    cfg = TrainConfig(epochs=2, batch_size=32, limit_batches=2, device="cpu", seed=3, patience=0)
    kd = {"w_out": 1.0, "w_feat": 0.1, "w_rel": 0.0, "teacher_combine": "inverse-error",
          "augment": "noise,dropout,mixup,shift"}
    teachers = [teacher_ckpt, second_teacher]

    def crash(trainer, epoch, logs):
        if epoch == 1:
            raise _Crash

    with pytest.raises(_Crash):
        distill_student(teachers, "gcn-gru", tmp_path / "a", hparams={"hidden": 8}, distill=kd, config=cfg, progress=False,
                        callbacks=[LambdaCallback(on_epoch_end=crash)])
    with contextlib.redirect_stderr(io.StringIO()):
        resumed = distill_student(teachers, "gcn-gru", tmp_path / "a", config=cfg, resume=True, progress=False)
    straight = distill_student(teachers, "gcn-gru", tmp_path / "b", hparams={"hidden": 8}, distill=kd, config=cfg, progress=False)
    assert resumed.resumed_from == 1
    for k, v in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in straight.history]
