"""A study killed with SIGKILL while it trains its own teacher finishes that teacher before any trial."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import signal
import subprocess
import time

import optuna
import pytest

from stgkd.engine.checkpoint import load_checkpoint, run_progress
from tuning.search import main
from tuning.storage import open_storage
from tuning_helpers import PYTHON, REPO, TEACHER_HPARAMS, search_args, subprocess_env

TEACHER_EPOCHS = 8


@pytest.mark.slow
def test_kill_9_during_the_teacher_then_resume_finishes_it_first(tmp_path, tiny_space):
    out = tmp_path / "study"
    teacher = [f"--teacher-hparam={k}={v}" for k, v in TEACHER_HPARAMS.items()]
    args = search_args(out, tiny_space, None, n_trials=2, extra=[
        "--teacher-epochs", str(TEACHER_EPOCHS), *teacher, "--study-name", "own-teacher", "--pruner", "none"])
    last, best = out / "teacher" / "last.pt", out / "teacher" / "best.pt"
    proc = subprocess.Popen([PYTHON, "-m", "tuning.search", *args], cwd=REPO, env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None and not best.exists():
            time.sleep(0.01)  # best.pt appears (after last.pt) when the teacher's first epoch is complete
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    proc.stderr.close()
    killed = run_progress(load_checkpoint(last))
    assert 1 <= killed.epochs < TEACHER_EPOCHS and killed.requested == TEACHER_EPOCHS and not killed.finished
    assert best.is_file()  # what the old code took for a finished teacher

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(args) == 0  # the same command again
    log = err.getvalue()
    assert f"stopped after epoch {killed.epochs} of {TEACHER_EPOCHS}; finishing it" in log
    assert "reusing the teacher" not in log
    # the teacher finished before the first trial: the study was created with the finished teacher's hash
    assert log.index("finishing it") < log.index("teacher cache:")
    done = load_checkpoint(last)
    assert run_progress(done).epochs == TEACHER_EPOCHS and [h["epoch"] for h in done["history"]] == list(
        range(1, TEACHER_EPOCHS + 1))
    logged = [json.loads(line)["epoch"] for line in (out / "teacher" / "log.jsonl").read_text().splitlines()]
    assert logged == list(range(1, TEACHER_EPOCHS + 1))  # each epoch once, the killed run's kept
    study = optuna.load_study(study_name="own-teacher", storage=open_storage(None, out).storage)
    assert study.user_attrs["stgkd"]["teacher_sha256"] == hashlib.sha256(best.read_bytes()).hexdigest()
    assert len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]) == 2

    # the report names the teacher, the epochs it trained and its validation MAE
    report = json.loads((out / "report.json").read_text())
    info = report["settings"]["teacher_training"]
    weights = load_checkpoint(best)
    assert info["path"] == str(best.resolve())
    assert (info["epochs_trained"], info["epochs_requested"], info["finished"]) == (TEACHER_EPOCHS, TEACHER_EPOCHS, True)
    assert info["epoch"] == weights["epoch"] == done["best"]["epoch"]
    assert info["val_mae"] == pytest.approx(weights["metrics"]["avg"]["mae"]) == pytest.approx(done["best"]["val_mae"])
    assert f"trained {TEACHER_EPOCHS} of {TEACHER_EPOCHS} epoch(s)" in (out / "report.md").read_text()

    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(args) == 0  # a finished teacher is reused, and says how far it trained
    assert f"reusing the teacher {best} ({TEACHER_EPOCHS} of {TEACHER_EPOCHS} epochs" in err.getvalue()
