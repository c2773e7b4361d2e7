"""A study killed with SIGKILL in the middle of a trial resumes by running the same command again."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from tuning.search import main
from tuning.storage import FlockLock
from tuning_helpers import PYTHON, REPO, search_args, subprocess_env

N_TRIALS = 5


def _study(out: Path) -> optuna.Study | None:
    journal = out / "study.journal"
    if not journal.exists():
        return None
    backend = optuna.storages.journal.JournalFileBackend(str(journal), lock_obj=FlockLock(str(journal) + ".flock"))
    storage = optuna.storages.journal.JournalStorage(backend)
    try:
        return optuna.load_study(study_name="resume", storage=storage)
    except KeyError:
        return None


def _mid_trial(out: Path) -> bool:
    """A trial completed and another one running (a worker has claimed it)."""
    study = _study(out)
    if study is None:
        return False
    trials = study.get_trials(deepcopy=False)
    running = [t for t in trials if t.state == TrialState.RUNNING and "worker" in t.user_attrs]
    return bool(running) and any(t.state == TrialState.COMPLETE for t in trials)


def test_kill_9_mid_trial_then_resume(tmp_path, tiny_space, tiny_teacher):
    out = tmp_path / "study"
    args = search_args(out, tiny_space, tiny_teacher, n_trials=N_TRIALS, epochs=3,
                       extra=["--study-name", "resume", "--pruner", "none"])
    proc = subprocess.Popen([PYTHON, "-m", "tuning.search", *args], cwd=REPO, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = False
    try:
        deadline = time.monotonic() + 240
        while not killed:
            assert proc.poll() is None, f"the study ended before it could be killed:\n{proc.stderr.read()}"
            assert time.monotonic() < deadline, "no trial was running after the first one completed"
            time.sleep(0.1)
            if not _mid_trial(out):
                continue
            # frozen, the study cannot finish the trial between the look and the kill: look again, then kill
            proc.send_signal(signal.SIGSTOP)
            if _mid_trial(out):
                proc.kill()  # SIGKILL: no handler, no cleanup
                killed = True
            else:
                proc.send_signal(signal.SIGCONT)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()

    before = _study(out).get_trials(deepcopy=False)
    kept = {t.number: (t.params, t.value) for t in before if t.state == TrialState.COMPLETE}
    (victim,) = [t.number for t in before if t.state == TrialState.RUNNING]  # left behind by the dead worker

    assert main(args) == 0  # the same command again

    after = _study(out).get_trials(deepcopy=False)
    for number, (params, value) in kept.items():  # completed trials are kept as they were
        assert after[number].state == TrialState.COMPLETE
        assert (after[number].params, after[number].value) == (params, value)
    dead = after[victim]
    assert dead.state == TrialState.FAIL and dead.system_attrs["fail_reason"].startswith("stale: worker")
    retries = [t for t in after if t.user_attrs.get("retry_of") == victim]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    # the retry keeps every parameter the dead trial had drawn (it may have been killed before drawing all)
    assert dead.params.items() <= retries[0].params.items()
    finished = [t for t in after if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == N_TRIALS  # --n-trials is the study's target, the failed trial not counted
    assert not [t for t in after if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    # nothing corrupted: every journal line is a complete JSON record, the report counts the failure
    for line in (out / "study.journal").read_bytes().splitlines():
        json.loads(line)
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["failed"] == 1 and report["counts"]["complete"] == N_TRIALS
    assert (out / "best_student.pt").is_file()
