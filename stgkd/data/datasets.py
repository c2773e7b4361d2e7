"""Registered datasets by name, the data root, and :func:`load_dataset` for names and paths.

Data root (where registered datasets live, one folder per dataset, e.g. ``<root>/metr-la/``):
the ``root`` argument, else the ``STGKD_DATA`` environment variable, else ``<repo>/datasets`` when
running from a checkout (the package's parent directory holds ``pyproject.toml``), else
``./datasets``.

Nothing here downloads: a missing file raises :class:`~stgkd.errors.DataError` naming the files,
the folder looked in, and ``stgkd data fetch NAME`` / where to get them (:mod:`stgkd.data.fetch`
downloads only when asked).
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from stgkd.data.core import TrafficData
from stgkd.errors import ConfigError, DataError
from stgkd.missing import MissingSpec, parse_missing
from stgkd.registry import Registry

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "RemoteFile",
    "ENV_DATA_ROOT",
    "data_root",
    "detect_layout",
    "get_dataset",
    "list_datasets",
    "load_dataset",
]

#: environment variable naming the data root
ENV_DATA_ROOT = "STGKD_DATA"

_DCRNN_DRIVE = "https://drive.google.com/drive/folders/10FOTa6HXPqX8Pf5WRoRwcFnW9BrNZEIX"
_DCRNN_GRAPH = "https://raw.githubusercontent.com/liyaguang/DCRNN/master/data/sensor_graph"
_ASTGNN_DATA = "https://raw.githubusercontent.com/guoshnBJTU/ASTGNN/main/data"
_STDMAE_DATA = "https://raw.githubusercontent.com/Jimmy-7664/STD-MAE/main/datasets/raw_data"
_PEMS_MANUAL = "the STSGCN repository's data link (https://github.com/Davidham3/STSGCN) or ASTGNN's data/ folder (https://github.com/guoshnBJTU/ASTGNN)"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a registered dataset.

    Args:
        name: file name inside the dataset folder.
        urls: direct download locations, tried in order (empty: no direct URL, see ``manual``).
        sha256: hex digest where known (``None``: not checked).
        manual: where to get the file by hand when it has no direct URL.
        aliases: other names accepted for the file (e.g. ``adj_mx.pkl`` for ``adj_mx_bay.pkl``).
        optional: the dataset loads without it.
    """

    name: str
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    manual: str | None = None
    aliases: tuple[str, ...] = ()
    optional: bool = False

    def find(self, folder: Path) -> Path | None:
        for candidate in (self.name,) + self.aliases:
            if (folder / candidate).is_file():
                return folder / candidate
        return None


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset: its files, expected shape and standard split.

    Args:
        name: registry name (``metr-la``, ...).
        title: display name.
        layout: ``"dcrnn"``, ``"astgcn"``, or a generator's (:data:`SYNTHETIC_LAYOUTS`: ``"synthetic"``,
            ``"synthetic-counts"``).
        files: the files in ``<root>/<name>/``.
        steps, nodes, channels: expected shape of the values (``None`` for synthetic).
        interval_minutes: sampling interval.
        split: standard train/val/test fractions.
        time_range: first and last timestamp (as released).
        source: where the data comes from (paper / repository).
        reader_kwargs: arguments passed to the layout's reader.
        notes: anything a user should know (gaps, units).
        missing: the release's missing-value convention (:mod:`stgkd.missing`), used unless
            ``load_dataset(..., missing=)`` says otherwise (default: ``"zero"``).
    """

    name: str
    title: str
    layout: str
    files: tuple[RemoteFile, ...]
    steps: int | None
    nodes: int | None
    channels: int | None
    interval_minutes: int
    split: tuple[float, float, float]
    time_range: tuple[str, str] | None
    source: str
    reader_kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    notes: str = ""
    missing: str = "zero"

    def folder(self, root: str | Path | None = None) -> Path:
        return data_root(root) / self.name

    def missing_files(self, folder: Path) -> list[RemoteFile]:
        return [f for f in self.files if not f.optional and f.find(folder) is None]


DATASETS: Registry[DatasetInfo] = Registry("dataset")


def _register(info: DatasetInfo) -> DatasetInfo:
    DATASETS.register(info.name, info)
    return info


_register(DatasetInfo(
    name="metr-la",
    title="METR-LA",
    layout="dcrnn",
    files=(
        RemoteFile("metr-la.h5", manual=f"DCRNN's Google Drive folder {_DCRNN_DRIVE} (or its Baidu Yun mirror)"),
        RemoteFile("adj_mx.pkl", urls=(f"{_DCRNN_GRAPH}/adj_mx.pkl",)),
    ),
    steps=34272, nodes=207, channels=1, interval_minutes=5, split=(0.7, 0.1, 0.2),
    time_range=("2012-03-01 00:00", "2012-06-27 23:55"),
    source="Li et al., DCRNN (ICLR 2018), https://github.com/liyaguang/DCRNN",
    reader_kwargs=MappingProxyType({"channel_names": ("speed",)}),
    notes="loop-detector speeds (mph), Los Angeles County; 0 = missing (about 8% of readings)",
    missing="zero",
))

_register(DatasetInfo(
    name="pems-bay",
    title="PEMS-BAY",
    layout="dcrnn",
    files=(
        RemoteFile(
            "pems-bay.h5",
            urls=("https://zenodo.org/records/4263971/files/pems-bay.h5?download=1",),
            manual=f"DCRNN's Google Drive folder {_DCRNN_DRIVE}",
        ),
        RemoteFile("adj_mx_bay.pkl", urls=(f"{_DCRNN_GRAPH}/adj_mx_bay.pkl",), aliases=("adj_mx.pkl",)),
    ),
    steps=52116, nodes=325, channels=1, interval_minutes=5, split=(0.7, 0.1, 0.2),
    time_range=("2017-01-01 00:00", "2017-06-30 23:55"),
    source="Li et al., DCRNN (ICLR 2018), https://github.com/liyaguang/DCRNN",
    reader_kwargs=MappingProxyType({"channel_names": ("speed",), "gaps": "keep"}),
    notes=(
        "PeMS speeds (mph), San Francisco Bay Area; 0 = missing; the release lacks the 12 steps of the "
        "2017-03-12 daylight-saving hour, kept as released (gaps='keep') so the standard split sees 52116 rows"
    ),
    missing="zero",
))


def _pems(number: str, steps: int, nodes: int, channels: int, start: str, end: str) -> DatasetInfo:
    stem = f"PEMS{number}"
    files = [
        RemoteFile(f"{stem}.npz", urls=(f"{_ASTGNN_DATA}/{stem}/{stem}.npz", f"{_STDMAE_DATA}/{stem}/{stem}.npz"), manual=_PEMS_MANUAL),
        RemoteFile(f"{stem}.csv", urls=(f"{_ASTGNN_DATA}/{stem}/{stem}.csv", f"{_STDMAE_DATA}/{stem}/{stem}.csv"), manual=_PEMS_MANUAL),
    ]
    if number == "03":
        files.append(RemoteFile(f"{stem}.txt", urls=(f"{_ASTGNN_DATA}/{stem}/{stem}.txt", f"{_STDMAE_DATA}/{stem}/{stem}.txt"), manual=_PEMS_MANUAL))
    return DatasetInfo(
        name=f"pems{number}",
        title=stem,
        layout="astgcn",
        files=tuple(files),
        steps=steps, nodes=nodes, channels=channels, interval_minutes=5, split=(0.6, 0.2, 0.2),
        time_range=(start, end),
        source="Guo et al., ASTGCN (AAAI 2019) / Song et al., STSGCN (AAAI 2020), from Caltrans PeMS",
        reader_kwargs=MappingProxyType({"start": start, "warn_dropped_edges": False}),
        notes=(
            "traffic flow (vehicles / 5 min)"
            + (", occupancy, speed" if channels == 3 else "")
            + "; 0 = missing, as in the masked metrics reported on these files; the file has no "
            "timestamps, the release's known start is used"
        ),
        missing="zero",
    )


_register(_pems("03", 26208, 358, 1, "2018-09-01 00:00", "2018-11-30 23:55"))
_register(_pems("04", 16992, 307, 3, "2018-01-01 00:00", "2018-02-28 23:55"))
_register(_pems("07", 28224, 883, 1, "2017-05-01 00:00", "2017-08-06 23:55"))
_register(_pems("08", 17856, 170, 3, "2016-07-01 00:00", "2016-08-31 23:55"))

_register(DatasetInfo(
    name="synthetic",
    title="synthetic road network",
    layout="synthetic",
    files=(),
    steps=None, nodes=None, channels=None, interval_minutes=5, split=(0.7, 0.1, 0.2),
    time_range=None,
    source="stgkd.data.synthetic.generate() with its defaults, made in memory",
    notes="speeds (mph); the generator reports a missing reading as 0",
    missing="zero",
))

_register(DatasetInfo(
    name="synthetic-counts",
    title="synthetic count network",
    layout="synthetic-counts",
    files=(),
    steps=None, nodes=None, channels=None, interval_minutes=60, split=(0.7, 0.1, 0.2),
    time_range=None,
    source=("stgkd.data.synthetic_counts.generate_counts() with its defaults (675 stops on 15 bus routes, 690 links, 31 days, "
            "hourly), made in memory"),
    notes=(
        "hourly boardings made to match a real bus network's figures (stgkd.data.count_stats.BUS_NETWORK; "
        "python -m benchmarks.count_stats): about 80 % of them 0 (readings, not missing), variance / mean about 14, "
        "stop means from 0.015 to 11 an hour (10-99 % quantiles), the week the strongest season; closed stops read "
        "0, counter outages (about 2 %) are NaN"
    ),
    missing="nan",
))

#: layouts made in memory by a generator, by name: ``"module:function"`` under :mod:`stgkd.data`
SYNTHETIC_LAYOUTS = {"synthetic": "synthetic:generate", "synthetic-counts": "synthetic_counts:generate_counts"}


# ----------------------------------------------------------------------------------------------


def data_root(root: str | Path | None = None) -> Path:
    """The data root: ``root``, else ``$STGKD_DATA``, else ``<repo>/datasets`` in a checkout, else ``./datasets``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_DATA_ROOT)
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file() and (repo / "stgkd").is_dir():
        return repo / "datasets"
    return Path.cwd() / "datasets"


def get_dataset(name: str) -> DatasetInfo:
    """The registered :class:`DatasetInfo` called ``name`` (:class:`ConfigError` if unknown)."""
    return DATASETS.get(name)


def list_datasets() -> list[str]:
    return DATASETS.names()


def _missing_message(info: DatasetInfo, folder: Path, missing: list[RemoteFile]) -> str:
    names = ", ".join(f.name for f in missing)
    fetchable = [f.name for f in missing if f.urls]
    manual = [f for f in missing if not f.urls]
    parts = [f"{info.name}: missing {names} in {folder}"]
    if fetchable:
        parts.append(f"run `stgkd data fetch {info.name}` to download {', '.join(fetchable)}")
    for f in manual:
        parts.append(f"get {f.name} from {f.manual} and put it there")
    parts.append("see datasets/README.md")
    return "; ".join(parts)


# ----------------------------------------------------------------------------------------------
# layout detection


def _layout(name: str):
    from stgkd.data.readers import LAYOUTS

    return LAYOUTS.get(name)


def detect_layout(path: str | Path) -> tuple[str, dict[str, Any]]:
    """Which layout ``path`` (a file or a folder) is in -> ``(layout, reader arguments)``.

    The registered layouts (:data:`stgkd.data.readers.LAYOUTS`) are asked in their detection order;
    the first that recognises the path wins. Folders: an ``.h5`` + ``adj_mx*.pkl`` is DCRNN's layout
    whatever the ``.h5`` is called; an ``.npz`` + ``.csv`` of the same stem is ASTGCN's; a
    ``*_speed.csv`` is T-GCN's (with ``*_adj.csv`` or ``adj_mx.pkl``); ``values.{csv,npz,npy,h5}`` +
    ``edges.csv`` / ``adjacency.csv`` / ``adjacency.npy`` (or ``graph.csv`` / ``adj.csv`` / ``adj.npy``)
    is the generic layout. Files: the same rules applied to the file and what lies beside it; a generic
    values file needs ``graph=`` unless a graph file lies beside it.
    """
    from stgkd.data.readers import layouts_in_order

    path = Path(path).expanduser()
    layouts = layouts_in_order()
    if path.is_dir():
        for layout in layouts:
            args = layout.in_folder(path)
            if args is not None:
                return layout.name, args
        present = ", ".join(sorted(p.name for p in path.iterdir())[:12]) or "nothing"
        expected = [layout.expects for layout in layouts]
        raise DataError(
            f"{path}: no supported dataset layout found (it holds {present}); expected "
            f"{', '.join(expected[:-1])}, or {expected[-1]}; see datasets/README.md"
        )
    if not path.exists():
        raise DataError(
            f"{path}: no such file or folder, and not a registered dataset name "
            f"(registered: {', '.join(list_datasets())})"
        )
    if path.suffix.lower() == ".pkl":
        raise DataError(f"{path}: this is a graph file; point at the readings (or the folder holding both)")
    for layout in layouts:
        args = layout.at_file(path)
        if args is not None:
            return layout.name, args
    raise DataError(
        f"{path}: unsupported file type {path.suffix.lower()!r}; see datasets/README.md for the supported layouts"
    )


def _call_reader(reader: Callable[..., TrafficData], args: dict[str, Any], kwargs: dict[str, Any], what: str) -> TrafficData:
    params = inspect.signature(reader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return reader(**{**args, **kwargs})
    unknown = sorted(k for k in kwargs if k not in params)
    if unknown:
        allowed = [p for p in params if p not in args]
        raise ConfigError(f"{what}: unknown argument(s) {unknown} for {reader.__name__}; it takes {allowed}")
    return reader(**{**args, **kwargs})


def load_dataset(
    name_or_path: str | Path, *, root: str | Path | None = None, missing: MissingSpec = None, **kwargs: Any
) -> TrafficData:
    """Load a registered dataset by name, or any supported layout from a path.

    Args:
        name_or_path: a registered name (``metr-la``, ``pems-bay``, ``pems03``, ``pems04``,
            ``pems07``, ``pems08``, ``synthetic``), or a file / folder in a supported layout (see
            :func:`detect_layout`).
        root: data root for registered names (default: ``$STGKD_DATA``, else ``<repo>/datasets``).
        missing: which readings are missing: ``"zero"`` (0 and NaN), ``"nan"`` (only NaN / empty
            cells; 0 is a reading), ``"none"``, or a sentinel number (:mod:`stgkd.missing`).
            Default: the registered dataset's convention (``"zero"`` for every one), ``"zero"`` for a path.
        **kwargs: passed to the layout's reader (e.g. ``graph=``, ``start=``, ``split=``,
            ``gaps=``), or to :func:`stgkd.data.synthetic.generate` for ``synthetic``
            (``num_nodes=``, ``num_days=``, ``seed=``). Unknown arguments raise :class:`ConfigError`.

    A registered dataset must have its standard shape (e.g. METR-LA 34272 x 207); load a
    non-standard file by its path instead.
    """
    key = str(name_or_path)
    if isinstance(name_or_path, str) and key in DATASETS:
        info = get_dataset(key)
        convention = parse_missing(info.missing if missing is None else missing, where=f"{key}: missing").name
        if info.layout in SYNTHETIC_LAYOUTS:
            import importlib

            module, function = SYNTHETIC_LAYOUTS[info.layout].split(":")
            generator = getattr(importlib.import_module(f"stgkd.data.{module}"), function)
            made = _call_reader(generator, {"missing": convention}, kwargs, info.name)
            return made[0] if isinstance(made, tuple) else made
        folder = info.folder(root)
        missing = info.missing_files(folder)
        if missing:
            raise DataError(_missing_message(info, folder, missing))
        layout = _layout(info.layout)
        args: dict[str, Any] = {arg: f.find(folder) for arg, f in zip(layout.registered_files, info.files)}
        args.update({"name": info.name, "split": info.split, "interval_minutes": info.interval_minutes,
                     "missing": convention})
        args.update(info.reader_kwargs)
        data = _call_reader(layout.reader, args, kwargs, info.name)
        expected = (info.steps, info.nodes, info.channels)
        if (data.num_steps, data.num_nodes, data.num_channels) != expected:
            raise DataError(
                f"{info.name}: {folder} holds {data.num_steps} steps x {data.num_nodes} sensors x "
                f"{data.num_channels} channels, but the standard release has {expected[0]} x {expected[1]} x "
                f"{expected[2]}; load a non-standard file by its path instead"
            )
        return data
    layout, args = detect_layout(name_or_path)
    if layout == "generic" and "graph" not in args and "graph" not in kwargs:
        raise DataError(
            f"{args['values_path']}: no graph given and no edges.csv / adjacency.csv / adjacency.npy beside it; pass graph="
        )
    args["missing"] = parse_missing(missing, where=f"{name_or_path}: missing").name
    return _call_reader(_layout(layout).reader, args, kwargs, str(name_or_path))
