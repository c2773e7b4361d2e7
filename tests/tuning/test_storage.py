"""Storage choice, masked passwords, the schema lock, the journal lock, journal repair and recovery of
trials whose worker died."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import subprocess
import time
from types import SimpleNamespace
from urllib.parse import quote, quote_plus

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

import tuning.storage
from stgkd.errors import ConfigError
from tuning.storage import (
    HEARTBEAT_ATTR,
    SCHEMA_LOCK_KEY,
    SCHEMA_LOCK_NAME,
    FlockLock,
    _schema_lock,
    mask_url,
    open_storage,
    recover_stale_trials,
    repair_journal,
    retry_trial,
    worker_alive,
    worker_identity,
)
from tuning_helpers import PYTHON, REPO, subprocess_env


def _locked_elsewhere(path) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def test_default_is_a_journal_file_in_the_study_directory(tmp_path):
    info = open_storage(None, tmp_path / "study")
    assert info.kind == "journal" and not info.has_heartbeat
    assert info.masked_url == str(tmp_path / "study" / "study.journal")
    assert info.dashboard_command == f"optuna-dashboard {tmp_path / 'study' / 'study.journal'}"
    study = optuna.create_study(study_name="s", storage=info.storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    # a second handle on the same file sees the trials (what another worker does)
    again = optuna.load_study(study_name="s", storage=open_storage(str(tmp_path / "study" / "study.journal"), tmp_path).storage)
    assert [t.params for t in again.trials] == [t.params for t in study.trials]


def test_sqlite_url_uses_rdb_with_heartbeat_and_bare_db_path_is_refused(tmp_path):
    info = open_storage(f"sqlite:///{tmp_path / 'study.db'}", tmp_path)
    assert info.kind == "rdb" and info.has_heartbeat
    assert info.storage.get_heartbeat_interval() == 30
    with pytest.raises(ConfigError, match="sqlite:///"):
        open_storage(str(tmp_path / "study.db"), tmp_path)
    with pytest.raises(ConfigError, match="is a directory"):
        open_storage(f"journal:{tmp_path}", tmp_path)


SECRET = "s3cr/t@pw%x"


def _secret_forms(text: str) -> list[str]:
    """The forms of :data:`SECRET` found in ``text`` (as given, percent-encoded, form-encoded)."""
    return [form for form in {SECRET, quote(SECRET, safe=""), quote_plus(SECRET)} if form in text]


@pytest.mark.parametrize("url, shown", [
    (f"postgresql://stgkd:{quote(SECRET, safe='')}@db.example:5432/studies",
     "postgresql://stgkd:***@db.example:5432/studies"),
    ("postgresql+psycopg://u:plain@127.0.0.1/db", "postgresql+psycopg://u:***@127.0.0.1/db"),
    ("mysql+pymysql://u:plain@h/db?charset=utf8mb4", "mysql+pymysql://u:***@h/db?charset=utf8mb4"),
    ("redis://:plain@localhost:6379/0", "redis://:***@localhost:6379/0"),
    ("postgresql://u:plain@h:notaport/db", "postgresql://u:***@h:notaport/db"),  # SQLAlchemy cannot parse it
    # nothing to hide: unchanged, character for character
    ("postgresql://stgkd@127.0.0.1:5432/postgres", "postgresql://stgkd@127.0.0.1:5432/postgres"),
    ("sqlite:////tmp/a study/study.db", "sqlite:////tmp/a study/study.db"),
    ("runs/study/study.journal", "runs/study/study.journal"),
    ("journal:runs/user:name@host/study.journal", "journal:runs/user:name@host/study.journal"),
])
def test_mask_url_hides_the_password_and_nothing_else(url, shown):
    assert mask_url(url) == shown
    assert "plain" not in mask_url(url) and not _secret_forms(mask_url(url))


def test_storage_errors_name_the_url_without_its_password(tmp_path, monkeypatch):
    url = f"postgresql://stgkd:{quote(SECRET, safe='')}@127.0.0.1:{_closed_port()}/db"
    # a real driver error: nothing listens on that port
    with pytest.raises(ConfigError, match="cannot open the database") as refused:
        open_storage(url, tmp_path)
    # a URL SQLAlchemy cannot parse
    with pytest.raises(ConfigError) as unparsed:
        open_storage(f"postgresql://stgkd:{quote(SECRET, safe='')}@127.0.0.1:port/db", tmp_path)
    # a missing driver (no MySQL driver is installed for the tests)
    with pytest.raises(ConfigError) as no_driver:
        open_storage(f"mysql+nosuchdriver://stgkd:{quote(SECRET, safe='')}@127.0.0.1/db", tmp_path)
    # a driver whose message repeats the URL and the password in every form
    monkeypatch.setattr(tuning.storage, "_schema_lock", lambda url: contextlib.nullcontext())

    def echoing_storage(url, **kwargs):
        raise RuntimeError(f"cannot use {url}: password {SECRET} ({quote(SECRET, safe='')}, {quote_plus(SECRET)})")

    monkeypatch.setattr(tuning.storage, "RDBStorage", echoing_storage)
    with pytest.raises(ConfigError, match="cannot open the database") as echoed:
        open_storage(url, tmp_path)
    for error in (refused, unparsed, no_driver, echoed):
        message = str(error.value)
        assert message.startswith("--storage postgresql://stgkd:***@") or message.startswith(
            "--storage mysql+nosuchdriver://stgkd:***@"), message
        assert _secret_forms(message) == [], message


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Database:
    """A stand-in for ``sqlalchemy.create_engine``: records the statements run and the URL connected to."""

    def __init__(self, get_lock_returns: object = 1) -> None:
        self.log: list[object] = []
        self.answer = get_lock_returns

    def create_engine(self, url: str, **kwargs: object) -> SimpleNamespace:
        self.log.append(("engine", url))

        def execute(statement: object, params: dict) -> SimpleNamespace:
            sql = str(statement)
            self.log.append((sql, dict(params)))
            return SimpleNamespace(scalar=lambda: self.answer if "GET_LOCK" in sql else None)

        connection = SimpleNamespace(execute=execute)
        outer = self

        class Connect:
            def __enter__(self) -> SimpleNamespace:
                return connection

            def __exit__(self, *exc: object) -> None:
                outer.log.append("closed")

        return SimpleNamespace(connect=Connect, dispose=lambda: self.log.append("disposed"))


@pytest.mark.parametrize("url, take, release, params", [
    ("postgresql+psycopg://u:pw@h/db", "SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)",
     {"key": SCHEMA_LOCK_KEY}),
    ("mysql+pymysql://u:pw@h/db", "SELECT GET_LOCK(:name, :timeout)", "SELECT RELEASE_LOCK(:name)",
     {"name": SCHEMA_LOCK_NAME, "timeout": 600}),
    ("mariadb+mariadbconnector://u:pw@h/db", "SELECT GET_LOCK(:name, :timeout)", "SELECT RELEASE_LOCK(:name)",
     {"name": SCHEMA_LOCK_NAME, "timeout": 600}),
])
def test_schema_lock_is_held_around_table_creation_and_released(monkeypatch, url, take, release, params):
    db = _Database()
    monkeypatch.setattr(sqlalchemy, "create_engine", db.create_engine)
    with _schema_lock(url):
        db.log.append("create tables")
    assert db.log == [("engine", url), (take, params), "create tables", (release, params), "closed", "disposed"]
    # released too when creating the tables fails
    db.log.clear()
    with pytest.raises(RuntimeError, match="duplicate"), _schema_lock(url):
        raise RuntimeError("duplicate table")
    assert db.log[-3:] == [(release, params), "closed", "disposed"]


def test_schema_lock_refused_by_mysql_is_a_clear_error_and_sqlite_takes_none(monkeypatch):
    for answer in (0, None):  # GET_LOCK timed out / failed
        db = _Database(get_lock_returns=answer)
        monkeypatch.setattr(sqlalchemy, "create_engine", db.create_engine)
        with pytest.raises(ConfigError) as error, _schema_lock("mysql+pymysql://stgkd:hunter2@db.example/studies"):
            db.log.append("create tables")
        message = str(error.value)
        assert message.startswith("--storage mysql+pymysql://stgkd:***@db.example/studies: no lock on Optuna's tables")
        assert "hunter2" not in message and f"returned {answer}" in message
        assert "create tables" not in db.log and db.log[-2:] == ["closed", "disposed"]
    db = _Database()
    monkeypatch.setattr(sqlalchemy, "create_engine", db.create_engine)
    with _schema_lock("sqlite:///study.db"):
        db.log.append("create tables")
    assert db.log == ["create tables"]  # no engine, no lock


def test_flock_lock_excludes_and_dies_with_its_holder(tmp_path):
    lock_path = tmp_path / "j.flock"
    lock = FlockLock(lock_path)
    lock.acquire()
    assert _locked_elsewhere(lock_path)
    lock.release()
    assert not _locked_elsewhere(lock_path)
    with pytest.raises(RuntimeError):
        lock.release()

    # a holder killed with SIGKILL leaves no stale lock behind
    code = (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from tuning.storage import FlockLock\n"
        "FlockLock(%r).acquire(); print('locked', flush=True); time.sleep(60)\n"
    ) % (str(REPO), str(lock_path))
    proc = subprocess.Popen([PYTHON, "-c", code], stdout=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        assert proc.stdout.readline().strip() == "locked"
        assert _locked_elsewhere(lock_path)
        proc.kill()
        proc.wait()
        assert not _locked_elsewhere(lock_path)
    finally:
        proc.kill()
        proc.wait()


def test_repair_journal_cuts_a_half_written_line(tmp_path):
    info = open_storage(None, tmp_path)
    study = optuna.create_study(study_name="s", storage=info.storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    journal = tmp_path / "study.journal"
    intact = journal.read_bytes()
    with open(journal, "ab") as fh:  # a writer killed in the middle of its line
        fh.write(b'{"op_code":5,"worker_id":"dead","trial_id":3,"sta')
    lock = FlockLock(str(journal) + ".flock")
    assert repair_journal(journal, lock) == len(b'{"op_code":5,"worker_id":"dead","trial_id":3,"sta')
    assert journal.read_bytes() == intact
    assert repair_journal(journal, lock) == 0
    # opening the storage repairs too, and the study reads back complete
    with open(journal, "ab") as fh:
        fh.write(b'{"op_')
    reopened = optuna.load_study(study_name="s", storage=open_storage(None, tmp_path).storage)
    assert [t.state for t in reopened.trials] == [TrialState.COMPLETE] * 3


def _dead_pid() -> int:
    proc = subprocess.Popen([PYTHON, "-c", "pass"])
    proc.wait()
    return proc.pid


def _running(study: optuna.Study, x: float, worker: dict | None = None, heartbeat: float | None = None) -> int:
    """Start the next queued trial (its x is ``x``) as if a worker ``worker`` ran it."""
    trial = study.ask()
    assert trial.suggest_float("x", 0, 10) == x
    if worker is not None:
        trial.set_user_attr("worker", worker)
    if heartbeat is not None:
        study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, heartbeat)
    return trial.number


def test_recover_stale_trials(tmp_path):
    study = optuna.create_study(study_name="s", storage=open_storage(None, tmp_path).storage)
    study.enqueue_trial({"x": 1.0})
    study.enqueue_trial({"x": 2.0})
    study.enqueue_trial({"x": 3.0})
    study.enqueue_trial({"x": 4.0})
    host = socket.gethostname()
    dead = _running(study, 1.0, {"host": host, "pid": _dead_pid(), "start": None})
    alive = _running(study, 2.0, worker_identity())
    remote_stale = _running(study, 3.0, {"host": "elsewhere", "pid": 1, "start": None}, heartbeat=time.time() - 3600)
    remote_fresh = _running(study, 4.0, {"host": "elsewhere", "pid": 1, "start": None}, heartbeat=time.time())
    done = study.ask()
    study.tell(done, 0.5)

    recovered = recover_stale_trials(study, stale_after_s=300)
    assert [n for n, _ in recovered] == [dead, remote_stale]
    assert "is gone" in recovered[0][1] and "no heartbeat" in recovered[1][1]
    trials = study.get_trials(deepcopy=False)
    assert trials[dead].state == TrialState.FAIL and trials[remote_stale].state == TrialState.FAIL
    assert trials[alive].state == TrialState.RUNNING and trials[remote_fresh].state == TrialState.RUNNING
    assert trials[done.number].state == TrialState.COMPLETE
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert sorted(t.params["x"] for t in waiting) == [1.0, 3.0]
    for t in waiting:
        assert t.user_attrs["retry_of"] in (dead, remote_stale)
        assert "worker" not in t.user_attrs and HEARTBEAT_ATTR not in t.system_attrs  # not the dead worker's
        assert t.system_attrs["retry_history"] == [t.user_attrs["retry_of"]]
    # idempotent: nothing left to recover
    assert recover_stale_trials(study, stale_after_s=300) == []
    # the next ask() runs a queued retry with the dead trial's parameters
    nxt = study.ask()
    assert nxt.suggest_float("x", 0, 10) in (1.0, 3.0)


def test_retry_limit(tmp_path):
    study = optuna.create_study()
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    study.tell(trial, state=TrialState.FAIL)
    frozen = study.trials[0]
    assert retry_trial(study, frozen, max_retry=1) == 1
    retried = study.trials[1]
    assert retry_trial(study, retried, max_retry=1) is None  # second retry of the same trial refused
    assert len(study.trials) == 2


def test_worker_alive():
    assert worker_alive(worker_identity()) is True
    assert worker_alive({"host": socket.gethostname(), "pid": _dead_pid(), "start": None}) is False
    me = worker_identity()
    if me["start"] is not None:  # a recycled pid (same number, other start time) is not our worker
        assert worker_alive({**me, "start": "1"}) is False
    assert worker_alive({"host": "elsewhere", "pid": os.getpid()}) is None
