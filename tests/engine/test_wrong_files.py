"""What the commands say when handed the wrong model file: an exported student where a training
checkpoint belongs, a student's checkpoint as the teacher; and how a run without distillation is named."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from stgkd.cli import main
from stgkd.engine import TrainConfig, load_checkpoint, train_model
from stgkd.errors import CheckpointError
from stgkd.export import export_student

QUICK = ["--epochs", "1", "--batch-size", "64", "--limit-batches", "2", "--device", "cpu", "--no-progress"]


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def student_ckpt(tmp_path_factory, data_dir) -> Path:
    """A gcn-gru student trained on its own for one short epoch."""
    out = tmp_path_factory.mktemp("student") / "gcn-gru"
    train_model(str(data_dir), "gcn-gru", out, hparams={"hidden": 8},
                config=TrainConfig(epochs=1, batch_size=64, limit_batches=2, device="cpu", seed=0), progress=False)
    return out / "best.pt"


@pytest.mark.parametrize("fmt, name", [("torchscript", "TorchScript"), ("torch.export", "torch.export")])
def test_an_exported_student_is_named_with_its_format_and_the_checkpoint_to_pass(tmp_path, student_ckpt, fmt, name):
    exported = export_student(student_ckpt, tmp_path / "student.pt", format=fmt)
    expected = (f"{exported} is an exported student (gcn-gru) in {name} format, written by `stgkd export` for "
                f"deployment (stgkd.Forecaster.load, stgkd latency), not a training checkpoint; pass "
                f"{student_ckpt}, the checkpoint it was exported from")
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(exported)
    assert str(caught.value) == expected
    for argv in (["distill", "--teacher", str(exported), "--out", str(tmp_path / "st"), *QUICK],
                 ["evaluate", str(exported), "--device", "cpu"]):
        code, _, err = _run(argv)
        assert code == 2 and err.strip().splitlines() == [f"stgkd {argv[0]}: error: {expected}"]
        assert "weights_only" not in err
    assert load_checkpoint(student_ckpt)["role"] == "student"  # a checkpoint still reads as one


def test_an_exported_onnx_student_is_named(tmp_path, student_ckpt):
    pytest.importorskip("onnx", reason="exporting ONNX needs the onnx package (the 'deploy' extra)")
    exported = export_student(student_ckpt, tmp_path / "student.onnx", format="onnx", checks=False)
    with pytest.raises(CheckpointError, match=r"is an exported student in ONNX format, .* not a training checkpoint; "
                                              r"pass the checkpoint it was exported from \(best\.pt in the run's folder\)"):
        load_checkpoint(exported)


def test_a_student_checkpoint_as_teacher_is_taken_with_one_warning(tmp_path, student_ckpt):
    code, out, err = _run(["distill", "--teacher", str(student_ckpt), "--student", "gcn-gru", "--hidden", "8",
                           "--out", str(tmp_path / "st"), *QUICK])
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert warnings == [f"warning: --teacher {student_ckpt}: a student's checkpoint (gcn-gru), distilled from "
                        "as the teacher"]
    assert "distilled gcn-gru: 1 epochs" in out
    assert load_checkpoint(tmp_path / "st" / "best.pt")["teacher_checkpoint"] == str(student_ckpt.resolve())


def test_a_run_with_every_distillation_weight_zero_is_summarised_as_plain(tmp_path, teacher_ckpt):
    code, out, err = _run(["distill", "--teacher", str(teacher_ckpt), "--student", "gcn-gru", "--hidden", "8",
                           "--w-out", "0", "--w-feat", "0", "--w-rel", "0", "--out", str(tmp_path / "plain"), *QUICK])
    assert code == 0, err
    assert "plain gcn-gru: 1 epochs" in out and "distilled" not in out
    # a Graph WaveNet teacher is a teacher: no warning; the one-epoch fixture is weaker than the student, said once
    assert [line for line in err.splitlines() if not line.startswith("note: the teacher's validation MAE")] == []
