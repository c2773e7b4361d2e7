"""Where a study lives, how several workers share it, and how a killed study resumes.

Storage (``--storage``):

* omitted: an Optuna **journal file** ``OUT/study.journal`` (``JournalStorage(JournalFileBackend)``).
  Every change is one appended JSON line written under a lock, so several processes (and machines on
  a shared file system) can run the same study at once. The lock is :class:`FlockLock`, an
  ``fcntl.flock`` on ``OUT/study.journal.flock``: the kernel drops it when its holder dies, so a worker
  killed with ``kill -9`` never leaves a stale lock behind (Optuna's default symlink lock would make
  everybody wait 30 s for its grace period). On file systems without working ``flock`` (some NFS set-ups)
  pass ``--storage journal+symlink:PATH`` to use Optuna's symlink lock instead.
  SQLite was not chosen as the default: it serialises writers with a database-wide lock, and several
  workers that write at once see ``database is locked`` errors.
* a path ending in ``.journal`` / ``.log`` (or ``journal:PATH``): that journal file.
* ``sqlite:///...``, ``postgresql://...``, ``mysql://...``: Optuna's ``RDBStorage`` with its heartbeat
  (PostgreSQL is the choice for a cluster; its driver, psycopg 3, comes with ``pip install 'stgkd[cluster]'``,
  and a plain ``postgresql://`` URL uses it when psycopg2 is not installed).
* ``redis://...``: ``JournalStorage(JournalRedisBackend)`` (needs the ``redis`` package).

Passwords. A password in a URL (``postgresql://user:secret@host/db``) is used to connect and nowhere else:
the report, the log lines, the study's attributes and every error message show the URL through
:func:`mask_url` (``postgresql://user:***@host/db``). To keep it out of the shell history and the process
list as well, leave it out of the URL and let the driver find it (``PGPASSWORD`` or ``~/.pgpass`` for
PostgreSQL).

Several workers that open an empty database at once would race on Optuna's ``CREATE TABLE`` statements; on
PostgreSQL, MySQL and MariaDB they take turns on a lock of the database (:data:`SCHEMA_LOCKS`).

Any of them opens in ``optuna-dashboard`` (``optuna-dashboard OUT/study.journal`` or the URL). The
dashboard only reads the study; its own writes (notes) take Optuna's default journal lock, not
:class:`FlockLock`, so leave notes for when no worker is running.

Faults. A trial records which process runs it (user attribute ``worker``: host, pid and the process
start time, so a recycled pid is not mistaken for the original) and, on journal storages, a heartbeat
(system attribute ``stgkd:heartbeat``, refreshed every :data:`HEARTBEAT_INTERVAL_S` seconds by a thread
while the trial runs). :func:`recover_stale_trials` runs when a worker starts and after every trial: a
``RUNNING`` trial whose worker is gone -- same host and that process no longer exists, or no heartbeat
for :data:`STALE_AFTER_S` seconds (other hosts; :data:`UNATTRIBUTED_STALE_AFTER_S` for a trial that never
recorded its worker) -- is marked ``FAIL`` and its parameters are enqueued
again (``WAITING``), so the next free worker re-runs it. On RDB storages Optuna's own heartbeat does the
same for other hosts, through the same re-enqueueing callback. A journal line half written by a killed
process is cut off by :func:`repair_journal` before the study is opened.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import fcntl
import os
import re
import socket
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, quote_plus

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock, JournalStorage
from optuna.storages.journal._file import BaseJournalFileLock  # the lock interface (not re-exported)
from optuna.trial import FrozenTrial, TrialState

from stgkd.errors import ConfigError

__all__ = [
    "DEFAULT_JOURNAL",
    "HEARTBEAT_INTERVAL_S",
    "STALE_AFTER_S",
    "FlockLock",
    "file_lock",
    "Heartbeat",
    "SCHEMA_LOCKS",
    "SchemaLock",
    "StorageInfo",
    "mask_url",
    "open_storage",
    "repair_journal",
    "worker_identity",
    "worker_alive",
    "recover_stale_trials",
    "retry_trial",
]

DEFAULT_JOURNAL = "study.journal"
#: seconds between two heartbeats of a running trial
HEARTBEAT_INTERVAL_S = 30
#: a running trial of another host without a heartbeat for this long is considered dead
STALE_AFTER_S = 300
#: a running trial that never recorded its worker (killed within milliseconds of its creation) is
#: considered dead after this long
UNATTRIBUTED_STALE_AFTER_S = 60
#: how often a trial is retried after its worker died
MAX_RETRY = 3

#: PostgreSQL advisory lock taken while Optuna sets up its tables (any constant; "stgkd" in ASCII)
SCHEMA_LOCK_KEY = 0x7374676B64
#: MySQL/MariaDB named lock taken while Optuna sets up its tables
SCHEMA_LOCK_NAME = "stgkd:optuna-schema"
#: seconds a worker waits for MySQL's lock before giving up (creating the tables takes about a second)
SCHEMA_LOCK_TIMEOUT_S = 600

WORKER_ATTR = "worker"
HEARTBEAT_ATTR = "stgkd:heartbeat"
RETRY_OF_ATTR = "retry_of"
_NOT_INHERITED = (WORKER_ATTR, HEARTBEAT_ATTR)


class FlockLock(BaseJournalFileLock):
    """Journal lock on ``fcntl.flock``: exclusive across processes and threads, released by the kernel
    when the holder dies (so ``kill -9`` cannot leave a stale lock).

    Args:
        path: the lock file (created if missing), e.g. ``study.journal.flock``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = str(path)
        self._local = threading.local()

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._local.fd = fd
        return True

    def release(self) -> None:
        fd = getattr(self._local, "fd", None)
        if fd is None:
            raise RuntimeError(f"{self._path}: lock released without being held")
        self._local.fd = None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive ``flock`` on ``path`` (released by the kernel if the holder dies), held for a ``with``
    block: the workers of a study take turns training its teacher and writing its report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def repair_journal(path: str | os.PathLike[str], lock: BaseJournalFileLock) -> int:
    """Cut a trailing, half-written line (a writer killed mid-append) off the journal ``path``.

    Writers append whole lines under ``lock``; a last line without its newline while we hold the lock
    can only come from a writer that died. Returns the number of bytes removed (0 when intact).
    """
    path = Path(path)
    if not path.exists():
        return 0
    lock.acquire()
    try:
        size = path.stat().st_size
        if size == 0:
            return 0
        with open(path, "rb+") as fh:
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return 0
            keep = 0
            block = 1 << 16
            pos = size
            while pos > 0:  # find the last newline, scanning backwards
                start = max(0, pos - block)
                fh.seek(start)
                chunk = fh.read(pos - start)
                idx = chunk.rfind(b"\n")
                if idx >= 0:
                    keep = start + idx + 1
                    break
                pos = start
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
        return size - keep
    finally:
        lock.release()


#: ``scheme://user:password@`` in a URL SQLAlchemy cannot parse
_USER_PASSWORD = re.compile(r"(://[^/?#@:]*:)(.*)(@)")


def _password(url: str) -> str | None:
    """The password in ``url`` (decoded), or ``None`` when it has none."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):  # not a URL SQLAlchemy reads (e.g. a port that is not a number)
        match = _USER_PASSWORD.search(url)
        password = match.group(2) if match else None
    return None if password is None else str(password)


def mask_url(url: str) -> str:
    """``url`` as it may be shown, logged or stored: its password replaced by ``***``.

    ``postgresql://stgkd:secret@host/db`` becomes ``postgresql://stgkd:***@host/db`` (SQLAlchemy's
    ``make_url(url).render_as_string(hide_password=True)``; ``redis://:secret@host`` likewise). A URL
    without a password and anything that is not a URL (a journal file path, ``journal:PATH``) come back
    unchanged. Every storage URL that is printed, logged, stored or put in a message goes through here.
    """
    if "://" not in url or _password(url) is None:
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _USER_PASSWORD.sub(r"\1***\3", url)


def _masked_message(text: str, url: str) -> str:
    """``text`` (a message about ``url``, e.g. a driver's error) with ``url`` masked and its password
    nowhere, whether written as given, decoded or percent-encoded."""
    text = text.replace(url, mask_url(url))
    password = _password(url)
    if password:
        for form in sorted({password, quote(password, safe=""), quote_plus(password)}, key=len, reverse=True):
            text = text.replace(form, "***")
    return text


class StorageInfo:
    """An opened storage and how to describe it to the user.

    Attributes:
        storage: the Optuna storage object to pass to ``optuna.create_study``.
        masked_url: what the user gave (or the default journal path) with its password masked
            (:func:`mask_url`): what reports, logs and messages show; never the secret itself.
        kind: ``"journal"``, ``"rdb"`` or ``"redis"``.
        has_heartbeat: whether Optuna's own heartbeat watches running trials (RDB storages).
    """

    def __init__(self, storage: BaseStorage, url: str, kind: str, has_heartbeat: bool) -> None:
        self.storage = storage
        self.masked_url = mask_url(url)
        self.kind = kind
        self.has_heartbeat = has_heartbeat

    @property
    def dashboard_command(self) -> str:
        """``optuna-dashboard URL`` (a masked password is typed in by hand, or left to ``PGPASSWORD``)."""
        return f"optuna-dashboard {self.masked_url}"


def _journal(path: Path, symlink_lock: bool) -> StorageInfo:
    if path.is_dir():
        raise ConfigError(f"--storage {path}: is a directory; give a journal file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    lock: BaseJournalFileLock
    if symlink_lock:
        lock = JournalFileSymlinkLock(str(path))
    else:
        lock = FlockLock(str(path) + ".flock")
        repair_journal(path, lock)
    backend = JournalFileBackend(str(path), lock_obj=lock)
    return StorageInfo(JournalStorage(backend), str(path), "journal", False)


def _sqlalchemy_url(url: str) -> str:
    """``url`` with a driver SQLAlchemy can load: a plain ``postgresql://`` means psycopg2 to SQLAlchemy;
    where only psycopg 3 is installed (the ``cluster`` extra) it becomes ``postgresql+psycopg://``."""
    import importlib.util

    plain = url.startswith("postgresql://")
    if plain and importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


@dataclass(frozen=True)
class SchemaLock:
    """A lock of the database that workers take in turn while Optuna creates or checks its tables.

    Args:
        take: SQL that waits for the lock.
        release: SQL that releases it.
        params: bind parameters of both statements.
        granted: whether ``take`` returns 1 once it holds the lock (0 or NULL: it timed out or failed);
            ``False`` for a statement that waits as long as it takes and returns nothing.
    """

    take: str
    release: str
    params: dict[str, Any] = field(default_factory=dict)
    granted: bool = False


_MYSQL_LOCK = SchemaLock(
    take="SELECT GET_LOCK(:name, :timeout)",
    release="SELECT RELEASE_LOCK(:name)",
    params={"name": SCHEMA_LOCK_NAME, "timeout": SCHEMA_LOCK_TIMEOUT_S},
    granted=True,
)
#: the schema lock of each SQLAlchemy backend (``make_url(url).get_backend_name()``); other backends
#: take none (SQLite: one file, written by one connection at a time)
SCHEMA_LOCKS: dict[str, SchemaLock] = {
    "postgresql": SchemaLock(take="SELECT pg_advisory_lock(:key)", release="SELECT pg_advisory_unlock(:key)",
                             params={"key": SCHEMA_LOCK_KEY}),
    "mysql": _MYSQL_LOCK,
    "mariadb": _MYSQL_LOCK,
}


@contextlib.contextmanager
def _schema_lock(url: str) -> Iterator[None]:
    """Hold the :data:`SCHEMA_LOCKS` entry of ``url``'s backend while Optuna creates or checks its tables.

    Workers started together on an empty database otherwise race on ``CREATE TABLE`` and all but one
    fail (PostgreSQL: ``duplicate key value violates unique constraint "pg_type_typname_nsp_index"``;
    MySQL: ``Table ... already exists``). The lock belongs to the connection, so a worker killed while
    holding it releases it.
    """
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    lock = SCHEMA_LOCKS.get(sqlalchemy.engine.make_url(url).get_backend_name())
    if lock is None:
        yield
        return
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            got = connection.execute(sqlalchemy.text(lock.take), lock.params).scalar()
            if lock.granted and got != 1:
                raise ConfigError(
                    f"--storage {mask_url(url)}: no lock on Optuna's tables after {SCHEMA_LOCK_TIMEOUT_S} s "
                    f"({lock.take} returned {got}); another worker still holds it, or the server refused it"
                )
            try:
                yield
            finally:
                # a release that fails (connection lost) changes nothing: the closing connection releases it
                with contextlib.suppress(Exception):
                    connection.execute(sqlalchemy.text(lock.release), lock.params)
    finally:
        engine.dispose()


#: what to install where a backend's driver is missing
_DRIVER_HINTS = {
    "postgresql": "pip install 'stgkd[cluster]' for PostgreSQL",
    "mysql": "pip install pymysql and write mysql+pymysql://...",
    "mariadb": "pip install pymysql and write mariadb+pymysql://...",
}


def open_storage(url: str | None, study_dir: str | os.PathLike[str]) -> StorageInfo:
    """Open ``url`` (see the module docstring), defaulting to ``study_dir/study.journal``."""
    study_dir = Path(study_dir)
    if not url:
        return _journal(study_dir / DEFAULT_JOURNAL, symlink_lock=False)
    if url.startswith("journal+symlink:"):
        return _journal(Path(url[len("journal+symlink:"):]).expanduser(), symlink_lock=True)
    if url.startswith("journal:"):
        return _journal(Path(url[len("journal:"):]).expanduser(), symlink_lock=False)
    if url.startswith("redis://") or url.startswith("rediss://"):
        try:
            from optuna.storages.journal import JournalRedisBackend

            return StorageInfo(JournalStorage(JournalRedisBackend(url)), url, "redis", False)
        except ImportError as exc:
            raise ConfigError(f"--storage {mask_url(url)}: the redis package is needed ({exc})") from None
        except Exception as exc:  # redis errors: bad URL, unreachable server, wrong password
            raise ConfigError(_masked_message(
                f"--storage {url}: cannot open the Redis journal ({type(exc).__name__}: {exc})", url)) from None
    if "://" in url:
        try:
            with warnings.catch_warnings(), _schema_lock(_sqlalchemy_url(url)):
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
                storage = RDBStorage(
                    _sqlalchemy_url(url),
                    heartbeat_interval=HEARTBEAT_INTERVAL_S,
                    grace_period=STALE_AFTER_S,
                    heartbeat_stale_trial_callback=retry_trial,
                )
        except ConfigError:
            raise
        except ImportError as exc:
            backend = url.split(":", 1)[0].split("+", 1)[0]
            hint = f" ({_DRIVER_HINTS[backend]})" if backend in _DRIVER_HINTS else ""
            raise ConfigError(_masked_message(
                f"--storage {url}: a database driver is missing ({exc}){hint}", url)) from None
        except Exception as exc:  # sqlalchemy errors: bad URL, unreachable server, wrong password
            raise ConfigError(_masked_message(
                f"--storage {url}: cannot open the database ({type(exc).__name__}: {exc})", url)) from None
        return StorageInfo(storage, url, "rdb", True)
    path = Path(url).expanduser()
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        raise ConfigError(
            f"--storage {url}: for SQLite give a URL (sqlite:///{path}); a bare path is taken as a journal file"
        )
    return _journal(path, symlink_lock=False)


# --------------------------------------------------------------------------------------------- workers
def _process_start_time(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (Linux ``/proc``), or ``None`` where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def worker_identity() -> dict[str, Any]:
    """``{"host", "pid", "start"}`` of this process (``start``: process start time, for pid reuse)."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _process_start_time(pid)}


def worker_alive(worker: dict[str, Any]) -> bool | None:
    """Whether the worker process still runs: ``True``/``False`` on this host, ``None`` elsewhere."""
    if worker.get("host") != socket.gethostname():
        return None
    pid = int(worker.get("pid", -1))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    start = worker.get("start")
    if start is not None:
        now = _process_start_time(pid)
        if now is not None and now != start:
            return False  # the pid was recycled by another process
        if now is None and not Path(f"/proc/{pid}").exists():
            return False
    # a zombie (killed, not yet reaped by its parent) is dead too
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
        if stat[stat.rfind(")") + 2 :].split()[:1] == ["Z"]:
            return False
    except OSError:
        pass
    return True


def mark_worker(trial: optuna.Trial) -> None:
    """Record this process as the runner of ``trial`` (first thing an objective does)."""
    trial.set_user_attr(WORKER_ATTR, worker_identity())


class Heartbeat:
    """Context manager: a daemon thread refreshing ``stgkd:heartbeat`` of a running trial.

    Used on storages without Optuna's heartbeat (journal files). Stopped and joined on exit, before the
    trial is told its result.
    """

    def __init__(self, trial: optuna.Trial, interval_s: float = HEARTBEAT_INTERVAL_S) -> None:
        self._storage = trial.storage
        self._trial_id = trial._trial_id
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        self._storage.set_trial_system_attr(self._trial_id, HEARTBEAT_ATTR, time.time())

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.beat()
            except Exception:  # the trial finished or the storage is briefly unavailable
                return

    def __enter__(self) -> "Heartbeat":
        self.beat()
        self._thread = threading.Thread(target=self._run, name="stgkd-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def retry_trial(study: optuna.Study, trial: FrozenTrial, max_retry: int = MAX_RETRY) -> int | None:
    """Enqueue the parameters of the failed ``trial`` again (``WAITING``), at most ``max_retry`` times.

    Like Optuna's ``RetryHeartbeatStaleTrialCallback`` (same ``failed_trial`` / ``retry_history``
    system attributes), except that nothing the dead run recorded is inherited (its worker, heartbeat,
    latency constraint and results): the retry starts clean, with ``user_attrs["retry_of"]``.
    Returns the number of retries so far, or ``None`` when the limit was reached.
    """
    # the dead run's outputs (constraints, worker, heartbeat, latency, status...) are not carried over:
    # the retry measures and records them again
    system_attrs = {
        k: v for k, v in trial.system_attrs.items() if k not in _NOT_INHERITED and not k.startswith("constraints")
    }
    history = list(system_attrs.get("retry_history", []))
    history.append(trial.number)
    if len(history) > max_retry:
        return None
    system_attrs["failed_trial"] = system_attrs.get("failed_trial", trial.number)
    system_attrs["retry_history"] = history
    system_attrs.pop("fail_reason", None)
    user_attrs = {RETRY_OF_ATTR: trial.number}
    study.add_trial(
        optuna.create_trial(
            state=TrialState.WAITING,
            params=copy.deepcopy(trial.params),
            distributions=copy.deepcopy(trial.distributions),
            user_attrs=user_attrs,
            system_attrs=system_attrs,
        )
    )
    return len(history)


def _is_stale(trial: FrozenTrial, now: float, stale_after_s: float) -> tuple[bool, str]:
    worker = trial.user_attrs.get(WORKER_ATTR)
    if isinstance(worker, dict):
        alive = worker_alive(worker)
        if alive is False:
            return True, f"worker {worker.get('host')}:{worker.get('pid')} is gone"
        if alive is True:
            return False, ""
    last = trial.system_attrs.get(HEARTBEAT_ATTR)
    limit = stale_after_s
    if last is None and trial.datetime_start is not None:
        last = trial.datetime_start.timestamp()  # naive local time, as Optuna stores it
        if not isinstance(worker, dict):
            limit = min(stale_after_s, UNATTRIBUTED_STALE_AFTER_S)
    if last is not None and now - float(last) > limit:
        return True, f"no heartbeat for {now - float(last):.0f} s"
    return False, ""


def recover_stale_trials(
    study: optuna.Study, *, stale_after_s: float = STALE_AFTER_S, max_retry: int = MAX_RETRY
) -> list[tuple[int, str]]:
    """Mark ``RUNNING`` trials of dead workers ``FAIL`` and enqueue their parameters again.

    Returns ``(trial number, reason)`` for every trial it failed. Safe to run from several workers at
    once: only the worker whose state change succeeds re-enqueues the trial.
    """
    recovered: list[tuple[int, str]] = []
    now = time.time()
    storage = study._storage
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        stale, reason = _is_stale(trial, now, stale_after_s)
        if not stale:
            continue
        try:
            storage.set_trial_system_attr(trial._trial_id, "fail_reason", f"stale: {reason}")
            changed = storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            changed = False  # another worker got there first
        if not changed:
            continue
        retry_trial(study, storage.get_trial(trial._trial_id), max_retry=max_retry)
        recovered.append((trial.number, reason))
    return recovered


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
