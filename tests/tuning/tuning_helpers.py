"""Helpers of the tuning tests: arguments of a tiny CPU study on a tiny synthetic network, and a
throw-away PostgreSQL server."""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import pytest


REPO = Path(__file__).resolve().parents[2]

#: a 5-sensor, one-day synthetic network: ~185 training windows
DATA_ARGS = ["--dataset", "synthetic", "--data-arg", "num_nodes=5", "--data-arg", "num_days=1"]
#: a Graph WaveNet small enough to train in a second or two
TEACHER_HPARAMS = {"residual_channels": 4, "dilation_channels": 4, "skip_channels": 8, "end_channels": 8,
                   "blocks": 1, "layers": 2}

#: the password of the role of the PostgreSQL study test ("@" and "%" so that its URL form is encoded)
STUDY_PASSWORD = "Pw-7x@Qz%9k"

TINY_SPACE = """\
family: {type: categorical, choices: [gru, gcn-gru]}
hidden: {type: int, low: 4, high: 8, step: 4}
layers: 1
graph_op: dense
batch_size: 32
"""


def search_args(out: Path, space: Path, teacher: Path | None, *, n_trials: int, budget: float = 1000.0,
                epochs: int = 1, extra: list[str] = ()) -> list[str]:
    """Arguments of a tiny CPU study (latency timed with few iterations)."""
    args = [*DATA_ARGS, "--latency-budget-ms", str(budget), "--latency-iters", "3", "--latency-warmup", "1",
            "--n-trials", str(n_trials), "--epochs", str(epochs), "--limit-batches", "2", "--device", "cpu",
            "--space", str(space), "--out", str(out), "--no-progress", "--no-plots", *extra]
    if teacher is not None:
        args += ["--teacher", str(teacher)]
    return args


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    return env


PYTHON = sys.executable

_BARRIER_RUNNER = """\
import os, runpy, sys, time
from pathlib import Path
import tuning.objective as objective

barrier, workers, sys.argv = Path(sys.argv[1]), int(sys.argv[2]), ["tuning.search", *sys.argv[3:]]
mark_worker, waited = objective.mark_worker, []

def mark_then_wait_for_every_worker(trial):
    mark_worker(trial)  # first: a trial without its worker would look stale to the others while it waits
    if not waited:
        waited.append(True)
        (barrier / str(os.getpid())).touch()
        deadline = time.monotonic() + 120
        while len(list(barrier.iterdir())) < workers:
            if time.monotonic() > deadline:
                print(f"barrier: {len(list(barrier.iterdir()))} of {workers} workers started a trial in 120 s; "
                      "going on", file=sys.stderr, flush=True)
                break
            time.sleep(0.05)

objective.mark_worker = mark_then_wait_for_every_worker
runpy.run_module("tuning.search", run_name="__main__", alter_sys=True)
"""


def workers_command(tmp: Path, workers: int) -> list[str]:
    """The command of one of ``workers`` workers of a shared study, to be followed by the arguments of
    ``python -m tuning.search``: each worker's first trial waits until every worker has started one.

    Without it a worker that starts a second late can find the study already finished by the others
    (the tiny study's trials take a tenth of a second), and the test of sharing would see one worker
    run every trial."""
    runner, barrier = tmp / "run_after_barrier.py", tmp / "barrier"
    if not runner.exists():  # never rewritten under a worker that is reading it
        runner.write_text(_BARRIER_RUNNER)
    barrier.mkdir(exist_ok=True)
    return [PYTHON, str(runner), str(barrier), str(workers)]


def postgres_bin() -> Path | None:
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


@contextlib.contextmanager
def postgres_server(password: str | None = None) -> Iterator[str]:
    """URL of the database ``postgres`` on a throw-away PostgreSQL server: its own data directory in the
    temporary directory, listening on a free loopback port and a private socket directory, stopped
    afterwards. The role ``stgkd`` is trusted, or, with ``password``, must give it over TCP (SCRAM); the
    URL then carries it (percent-encoded). Skips the test, saying why, where there is no server."""
    bindir = postgres_bin()
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
        auth = ["--auth=trust"]
        if password is not None:
            pwfile = root / "pwfile"
            pwfile.write_text(password + "\n")
            if run_as:
                os.chown(pwfile, run_as["user"], run_as["group"])
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        init = subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "stgkd", *auth, "-E", "UTF8",
                               "--locale=C", "--no-sync"], capture_output=True, text=True, cwd=root, **run_as)
        if password is not None:
            (root / "pwfile").unlink()
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
        user = "stgkd" if password is None else f"stgkd:{quote(password, safe='')}"
        yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown: disconnect clients, stop
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)
