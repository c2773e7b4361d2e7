"""``stgkd data info|synth|fetch|list``: inspect, synthesise and download datasets.

* ``stgkd data info NAME_OR_PATH [--data-dir DIR] [--missing zero|nan|none|NUMBER] [--graph FILE]
  [--sigma S] [--threshold W]``: steps, nodes,
  channels, interval, time range, the missing-value convention, missing %, the sensors with no reading
  at all (by id), and the graph summary of :func:`stgkd.data.graph.graph_info`. A large share of
  missing readings is a warning that says how to change the convention.
* ``stgkd data synth --out DIR [--nodes N --days D --seed S]``: a synthetic network written in
  DCRNN's layout (``synthetic.h5`` + ``adj_mx.pkl``) plus its road graph as ``edges.csv``
  (``source,target,length_km``); ``load_dataset(DIR)`` reads it back.
* ``stgkd data fetch NAME [--root DIR]``: download the files of a registered dataset (exit 1 when
  some file has no direct URL and must be fetched by hand; the command says where).
* ``stgkd data list [--data-dir DIR]``: registered datasets and whether their files are present.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import Any

from stgkd.missing import add_missing_argument

HELP = "inspect, synthesise and fetch datasets"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True

    info = sub.add_parser("info", help="summary of a dataset (registered name or path)")
    info.add_argument("dataset", metavar="NAME_OR_PATH", help="registered name (e.g. metr-la) or a file/folder")
    info.add_argument("--data-dir", "--root", dest="root", metavar="DIR", help="data root (default: $STGKD_DATA or <repo>/datasets)")
    info.add_argument("--start", help="first timestamp, for files without timestamps (Los-loop CSV, generic)")
    info.add_argument("--graph", metavar="FILE", help="graph file for a generic values file")
    info.add_argument("--sigma", type=float, metavar="S",
                      help="width of the Gaussian kernel of an edge list's distances (default: their std, as DCRNN)")
    info.add_argument("--threshold", type=float, metavar="W",
                      help="kernel weights under W are dropped; 0 keeps every listed edge (default: 0.1, DCRNN's)")
    add_missing_argument(info, default="the registered dataset's convention, zero for a path")
    info.set_defaults(_action=_info)

    synth = sub.add_parser("synth", help="write a synthetic dataset in DCRNN's layout")
    synth.add_argument("--out", required=True, metavar="DIR", help="folder to write (created if missing)")
    synth.add_argument("--nodes", type=int, default=None, help="number of sensors (default: generator's)")
    synth.add_argument("--days", type=int, default=None, help="number of days (default: generator's)")
    synth.add_argument("--seed", type=int, default=None, help="random seed (default: generator's)")
    synth.add_argument("--force", action="store_true", help="overwrite files already in DIR")
    synth.set_defaults(_action=_synth)

    fetch = sub.add_parser("fetch", help="download a registered dataset's files (only when asked)")
    fetch.add_argument("dataset", metavar="NAME", help="registered dataset name")
    fetch.add_argument("--root", "--data-dir", dest="root", metavar="DIR", help="data root (default: $STGKD_DATA or <repo>/datasets)")
    fetch.add_argument("--base-url", metavar="URL", help="mirror laid out as URL/NAME/FILE (default: $STGKD_DATA_URL)")
    fetch.add_argument("--force", action="store_true", help="download again files already present")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar")
    fetch.set_defaults(_action=_fetch)

    lst = sub.add_parser("list", help="registered datasets and whether their files are present")
    lst.add_argument("--data-dir", "--root", dest="root", metavar="DIR", help="data root")
    lst.set_defaults(_action=_list)


def run(args: argparse.Namespace) -> int:
    return int(args._action(args))


# ----------------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return " ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value)


def _info(args: argparse.Namespace) -> int:
    import numpy as np

    from stgkd.data.datasets import load_dataset
    from stgkd.data.graph import graph_info

    kwargs: dict[str, Any] = {}
    if args.start is not None:
        kwargs["start"] = args.start
    if args.graph is not None:
        kwargs["graph"] = args.graph
    for name in ("sigma", "threshold"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    data = load_dataset(args.dataset, root=args.root, missing=args.missing, **kwargs)
    values = data.values
    lines = [
        f"dataset: {data.name}",
        f"source: {', '.join(data.source) or 'generated in memory'}",
        f"steps: {data.num_steps}",
        f"nodes: {data.num_nodes}",
        f"channels: {data.num_channels} ({', '.join(data.channel_names)})",
        f"interval: {data.interval_minutes} min",
    ]
    if data.timestamps is not None and len(data.timestamps):
        lines.append(f"time range: {data.timestamps[0]} .. {data.timestamps[-1]}")
    else:
        lines.append("time range: no timestamps")
    lines.append(f"missing: {100.0 * data.missing_fraction:.2f}% of channel-0 readings "
                 f"({data.missing_policy.describe()})")
    silent = data.silent_sensors
    shown = ", ".join(silent[:20]) + (f", ... ({len(silent) - 20} more)" if len(silent) > 20 else "")
    lines.append(f"sensors without any reading: {len(silent)}{f' ({shown})' if silent else ''}")
    observed = values[..., 0][np.isfinite(values[..., 0])]
    if observed.size:
        lines.append(
            f"values (observed, channel 0): min {observed.min():.4g}, mean {observed.mean():.4g}, max {observed.max():.4g}"
        )
    lines.append(f"split: {'/'.join(f'{s:g}' for s in data.split)}")
    lines.append("graph:")
    lines.extend(f"  {key.replace('_', ' ')}: {_fmt(value)}" for key, value in graph_info(data.adj).items())
    lines.append(f"  non-zeros (incl. diagonal): {int((data.adj != 0).sum())}")
    print("\n".join(lines))
    return 0


def _synth(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from stgkd.data.synthetic import generate
    from stgkd.errors import ConfigError
    from stgkd.files import atomic_write

    kwargs = {k: v for k, v in (("num_nodes", args.nodes), ("num_days", args.days), ("seed", args.seed)) if v is not None}
    for key, value in kwargs.items():
        if key != "seed" and value <= 0:
            raise ConfigError(f"--{key.split('_')[1]} must be positive, got {value}")
    out = Path(args.out).expanduser()
    targets = [out / "synthetic.h5", out / "adj_mx.pkl", out / "edges.csv"]
    existing = [p.name for p in targets if p.exists()]
    if existing and not args.force:
        raise ConfigError(f"{out}: already holds {', '.join(existing)}; pass --force to overwrite")
    data, graph = generate(**kwargs)
    out.mkdir(parents=True, exist_ok=True)

    stamps = data.timestamps
    if stamps is None:
        stamps = pd.date_range("2024-01-01", periods=data.num_steps, freq=pd.Timedelta(minutes=data.interval_minutes))
    readings = np.nan_to_num(data.values[..., 0], nan=0.0)  # DCRNN's layout records a missing reading as 0
    frame = pd.DataFrame(readings, index=pd.DatetimeIndex(stamps), columns=list(data.sensor_ids))
    atomic_write(targets[0], lambda tmp: frame.to_hdf(tmp, key="df", mode="w"))

    ids = [str(s) for s in data.sensor_ids]
    payload = [ids, {s: i for i, s in enumerate(ids)}, np.asarray(data.adj, dtype=np.float32)]
    atomic_write(targets[1], pickle.dumps(payload, protocol=2))

    rows = []
    for u, v, attrs in graph.edges(data=True):
        su = graph.nodes[u].get("sensor_id", u)
        sv = graph.nodes[v].get("sensor_id", v)
        rows.append((str(su), str(sv), float(attrs["length_km"])))
    edges = pd.DataFrame(rows, columns=["source", "target", "length_km"])
    atomic_write(targets[2], lambda tmp: edges.to_csv(tmp, index=False))

    dropped = f" (channel 0 of {data.num_channels})" if data.num_channels > 1 else ""
    print(
        f"wrote {data.num_steps} steps x {data.num_nodes} sensors{dropped} to {out}: "
        f"{targets[0].name}, {targets[1].name} ({int((data.adj != 0).sum())} non-zeros), "
        f"{targets[2].name} ({len(edges)} road segments)"
    )
    print(f"load it with: stgkd data info {out}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from stgkd.data.fetch import fetch

    result = fetch(args.dataset, root=args.root, base_url=args.base_url, force=args.force, progress=not args.no_progress)
    for path in result.present:
        print(f"present:    {path}")
    for path in result.downloaded:
        print(f"downloaded: {path}")
    for remote in result.manual:
        print(f"by hand:    {remote.name}: no direct download; get it from {remote.manual} and put it in {result.folder}")
    if result.complete:
        print(f"{result.name}: all files in {result.folder}")
        return 0
    print(f"{result.name}: {len(result.manual)} file(s) still to get by hand (see above)")
    return 1


def _list(args: argparse.Namespace) -> int:
    from stgkd.data.datasets import SYNTHETIC_LAYOUTS, get_dataset, list_datasets

    for name in list_datasets():
        info = get_dataset(name)
        if info.layout in SYNTHETIC_LAYOUTS:
            status = "generated in memory"
            shape = "-"
        else:
            folder = info.folder(args.root)
            missing = info.missing_files(folder)
            status = "present" if not missing else f"missing {', '.join(f.name for f in missing)}"
            shape = f"{info.steps}x{info.nodes}x{info.channels}"
        print(f"{name:10s} {shape:16s} {status}")
    return 0
