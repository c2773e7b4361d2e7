"""What every benchmark script shares: its record flags, where and how a record is written, the environment
it ran in (:func:`environment`), its progress log and how it states an error."""

from __future__ import annotations

import argparse
import datetime as _dt
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = ["RESULTS", "add_record_args", "environment", "log", "one_line", "pgt_version", "record_stem", "write_json",
           "write_record"]

#: where a script writes its records unless ``--out`` says otherwise
RESULTS = Path(__file__).resolve().parent / "results"


def add_record_args(parser: argparse.ArgumentParser, *, allow_busy: bool = False,
                    smoke: str | None = None) -> argparse.ArgumentParser:
    """``--out`` and ``--tag``, worded alike in every script; with ``allow_busy`` also ``--allow-busy``, with
    ``smoke`` a ``--smoke`` flag that help text describes."""
    from benchmarks.idle import add_allow_busy

    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (default: benchmarks/results)")
    parser.add_argument("--tag", default="", help="suffix of the record's file names")
    if allow_busy:
        add_allow_busy(parser)
    if smoke:
        parser.add_argument("--smoke", action="store_true", help=smoke)
    return parser


def record_stem(args: argparse.Namespace, name: str, date: str) -> Path:
    """``OUT/<name>-<date>[-TAG]``: where a record's JSON and Markdown go."""
    return Path(args.out) / f"{name}-{date}{'-' + args.tag if args.tag else ''}"


def _plain(obj: Any) -> Any:
    """A JSON value for what ``json`` cannot write: a number as a float (numpy scalars), else its text."""
    try:
        return float(obj)
    except (TypeError, ValueError):
        return list(obj) if isinstance(obj, (set, tuple)) else str(obj)


def write_json(path: Path, record: dict[str, Any]) -> Path:
    """``record`` as JSON at ``path``, written atomically (a reader never sees half a file)."""
    import json

    from stgkd.files import atomic_write

    return atomic_write(Path(path), json.dumps(record, indent=1, default=_plain) + "\n")


def write_record(stem: Path, report: dict[str, Any], markdown: str) -> None:
    """``<stem>.json`` (the report) and ``<stem>.md`` (its rendering), each written atomically; says so."""
    from stgkd.files import atomic_write

    write_json(stem.with_name(stem.name + ".json"), report)
    atomic_write(stem.with_name(stem.name + ".md"), markdown)
    print(f"written: {stem}.json, {stem}.md")


def one_line(exc: BaseException) -> str:
    """``"TypeName: the first line of its message"`` (at most 300 characters of it)."""
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"


def log(msg: str) -> None:
    """``[HH:MM:SS] msg`` on stderr, flushed (a benchmark's progress)."""
    print(f"[{_dt.datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def environment(device: str) -> dict[str, Any]:
    """The device and its name, the versions of torch, CUDA, Python and torch-geometric-temporal, the
    platform and torch's intra-op thread count."""
    import torch

    from stgkd.latency import device_name

    return {"device": device, "device_name": device_name(device), "torch": torch.__version__,
            "cuda": torch.version.cuda, "python": platform.python_version(), "platform": platform.platform(),
            "threads": torch.get_num_threads(), **pgt_version()}


def installed(package: str) -> str | None:
    """The installed version of ``package`` (its distribution name), ``None`` when it is not installed."""
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def pgt_version() -> dict[str, Any]:
    """``{"torch_geometric_temporal": version}`` (``None`` when not installed), imported as the peers import it
    (:func:`stgkd.compat.import_torch_geometric_temporal`: PGT's ``import torch_sparse`` needs a stand-in);
    when the import fails anyway, ``"torch_geometric_temporal_import_error"`` says why."""
    from stgkd.compat import import_torch_geometric_temporal

    out: dict[str, Any] = {"torch_geometric_temporal": installed("torch-geometric-temporal")}
    if out["torch_geometric_temporal"] is None:
        return out
    try:
        import_torch_geometric_temporal()
    except Exception as exc:  # installed but not importable: the peers' rows will fail too, and say so
        out["torch_geometric_temporal_import_error"] = f"{type(exc).__name__}: {exc}"
    return out
