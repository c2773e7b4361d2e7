"""Two worker processes running the same command share one study."""

from __future__ import annotations

import re
import subprocess
from collections import Counter

import optuna
from optuna.trial import TrialState

from tuning.storage import open_storage
from tuning_helpers import REPO, search_args, subprocess_env, workers_command

TARGET = 6


def test_two_workers_share_one_study(tmp_path, tiny_space, tiny_teacher):
    out = tmp_path / "study"
    args = search_args(out, tiny_space, tiny_teacher, n_trials=TARGET, epochs=2, extra=["--study-name", "shared"])
    procs = [
        subprocess.Popen([*workers_command(tmp_path, 2), *args], cwd=REPO, env=subprocess_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=400)
            outputs.append(stderr)
            assert proc.returncode == 0, stderr
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    ran = []
    for stderr in outputs:
        match = re.search(r"this worker ran (\d+) trial\(s\)", stderr)
        assert match, stderr
        ran.append(int(match.group(1)))
    study = optuna.load_study(study_name="shared", storage=open_storage(None, out).storage)
    trials = study.get_trials(deepcopy=False)
    # one study holds the trials of both workers, and nothing else
    assert len(trials) == sum(ran)
    by_pid = Counter(t.user_attrs["worker"]["pid"] for t in trials)
    assert by_pid == Counter({procs[0].pid: ran[0], procs[1].pid: ran[1]})
    assert all(n >= 1 for n in ran), f"one worker ran no trial: {ran}"
    # they stop together at the target (at most one trial in flight may overshoot it)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert TARGET <= len(finished) <= TARGET + 1
    assert len({t.number for t in trials}) == len(trials)
