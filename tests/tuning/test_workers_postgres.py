"""Two workers, each with its own study directory as on two machines, share one study through a real
PostgreSQL server (started on loopback by the test; skipped with the reason where there is none)."""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import optuna
import pytest
from optuna.trial import TrialState

from tuning.storage import open_storage
from tuning_helpers import PYTHON, REPO, search_args, subprocess_env

TARGET = 6


def _server_bin() -> Path | None:
    """The directory of the PostgreSQL server programs (``initdb``, ``postgres``, ``pg_isready``)."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    # Debian and Ubuntu keep them off the PATH, one directory per major version
    candidates += [Path(p).parent for p in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                                                  key=lambda p: int(Path(p).parts[-3]), reverse=True)]
    for directory in candidates:
        if all((directory / name).is_file() for name in ("initdb", "postgres", "pg_isready")):
            return directory
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    """URL of a database on a throw-away PostgreSQL server: its own data directory in the temporary
    directory, listening on a free loopback port and a private socket directory, stopped afterwards."""
    bindir = _server_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server installed (.ci/run installs Debian's postgresql package)")
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is None:
        pytest.skip("no PostgreSQL driver installed (pip install -e '.[cluster]')")
    run_as: dict = {}
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    root = Path(tempfile.mkdtemp(prefix="stgkd-pg-"))
    proc = None
    try:
        if run_as:
            os.chown(root, run_as["user"], run_as["group"])
        data, sockets = root / "data", root / "run"
        init = subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "stgkd", "--auth=trust", "-E", "UTF8",
                               "--locale=C", "--no-sync"], capture_output=True, text=True, cwd=root, **run_as)
        if init.returncode != 0:
            pytest.skip(f"initdb failed: {init.stderr.strip()[-500:]}")
        sockets.mkdir()
        if run_as:
            os.chown(sockets, run_as["user"], run_as["group"])
        port = _free_port()
        log = open(root / "server.log", "w")
        proc = subprocess.Popen([str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets),
                                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                                 "-c", "full_page_writes=off"], stdout=log, stderr=subprocess.STDOUT, cwd=root, **run_as)
        log.close()
        deadline = time.monotonic() + 30
        while subprocess.run([str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"the PostgreSQL server did not start: {(root / 'server.log').read_text()[-500:]}")
            time.sleep(0.1)
        yield f"postgresql://stgkd@127.0.0.1:{port}/postgres"
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown: disconnect clients, stop
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)


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
        subprocess.Popen([PYTHON, "-m", "tuning.search",
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
