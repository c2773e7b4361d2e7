"""Two workers, each with its own study directory as on two machines, share one study through a real
PostgreSQL server (started on loopback by the ``postgres_url`` fixture; skipped with the reason where
there is none)."""

from __future__ import annotations

import re
import subprocess
import threading
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tuning.storage import open_storage
from tuning_helpers import REPO, search_args, subprocess_env, workers_command

TARGET = 6


def test_workers_starting_together_on_an_empty_database_all_open_it(tmp_path, postgres_url):
    # without a lock around Optuna's CREATE TABLEs, all but one fail with a duplicate key in pg_type
    start = threading.Barrier(6)
    errors: list[str] = []

    def open_it() -> None:
        start.wait()
        try:
            open_storage(postgres_url, tmp_path)
        except Exception as exc:  # noqa: BLE001 - collected and reported below
            errors.append(str(exc))

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert optuna.get_all_study_summaries(open_storage(postgres_url, tmp_path).storage) == []


@pytest.mark.slow
def test_two_workers_on_two_study_directories_share_one_postgresql_study(tmp_path, tiny_space, tiny_teacher,
                                                                         postgres_url):
    outs = [tmp_path / "machine-a", tmp_path / "machine-b"]
    procs = [
        subprocess.Popen([*workers_command(tmp_path, len(outs)),
                          *search_args(out, tiny_space, tiny_teacher, n_trials=TARGET, epochs=2,
                                       extra=["--study-name", "cluster", "--storage", postgres_url])],
                         cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for out in outs
    ]
    outputs = []
    try:
        for proc in procs:
            _, stderr = proc.communicate(timeout=300)
            outputs.append(stderr)
            assert proc.returncode == 0, stderr
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    ran = []
    for stderr in outputs:
        assert f"in {postgres_url}:" in stderr  # the study lives in the database, not in a journal file
        match = re.search(r"this worker ran (\d+) trial\(s\)", stderr)
        assert match, stderr
        ran.append(int(match.group(1)))
    assert not any((out / "study.journal").exists() for out in outs)
    study = optuna.load_study(study_name="cluster", storage=open_storage(postgres_url, tmp_path).storage)
    trials = study.get_trials(deepcopy=False)
    # the study holds the union of both workers' trials, each under its own number
    assert len(trials) == sum(ran)
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    by_pid = Counter(t.user_attrs["worker"]["pid"] for t in trials)
    assert by_pid == Counter({procs[0].pid: ran[0], procs[1].pid: ran[1]})
    assert all(n >= 1 for n in ran), f"one worker ran no trial: {ran}"
    for proc, out in zip(procs, outs):  # each worker wrote its students into its own directory
        mine = [t for t in trials if t.user_attrs["worker"]["pid"] == proc.pid and t.state == TrialState.COMPLETE]
        assert all(Path(t.user_attrs["checkpoint"]).is_relative_to(out) for t in mine)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert TARGET <= len(finished) <= TARGET + 1
    assert study.user_attrs["stgkd"]["teacher_sha256"]
