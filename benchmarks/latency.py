"""Inference latency of the teacher, the students and the PGT peers, and the training-step time of every model.

Every figure is :mod:`stgkd.latency`'s on untrained models of the right shape (latency does not depend on the
weights). Sections (``--sections``): ``main``, Graph WaveNet and every registered student family at
``--widths``, eager and CUDA graph, fp32 and bf16 (each row's ``precision`` says how bf16 ran); ``peers``, PGT's
``A3TGCN2``, ``TGCN2`` stepped over the window, ``BatchedDCRNN`` and ``MTGNN`` at ``--peer-batch``, eager, fp32;
``timing``, forward and forward+backward of every registered model, teacher and students before the peers, on
METR-LA's graph when the week is present. On CUDA each CUDA-graph setting is first captured in a child process
(:mod:`benchmarks.capture`): one that does not capture, or that fails otherwise, is a row saying why and costs
no other model its figures. ``--threads 1 2`` times every setting once per CPU thread count.

Records ``latency-<device>-<date>[-tag]`` (main, peers) and ``model-timing-<device>-<date>[-tag]`` (timing);
:func:`collect` and :func:`time_models` are the loops without the files (``benchmarks.gpu`` runs them under a
time budget). A busy machine is refused (:mod:`benchmarks.idle`).

    python -m benchmarks.latency --device cpu --sections main peers --nodes 207 --batch 1 64 --peer-batch 1 64 \\
        --modes eager --dtypes fp32 --threads 1 2 --iters 10 --warmup 2 --tag idle
    python -m benchmarks.latency --device cpu --sections timing --threads 1 --iters 10 --warmup 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

import stgkd.latency
from benchmarks.budget import Deadline
from benchmarks.capture import CaptureJob, model_config, probe_missing, setting_key, timed
from benchmarks.idle import EXIT_BUSY, refuse_busy
from benchmarks.record import add_record_args, environment, log, one_line, write_record
from benchmarks.table.records import table
from stgkd.latency import cpu_threads, device_name, is_busy, random_graph
from stgkd.precision import inference_precision, precision_label

SECTIONS = ("main", "peers", "timing")
#: the peers section's labels and the registered models they time (:mod:`stgkd.nn.peers`)
PEERS = {"a3tgcn2": "pgt-a3tgcn", "tgcn2-stepped": "pgt-tgcn", "batched-dcrnn": "dcrnn", "mtgnn": "mtgnn"}
NO_CUDA = "no CUDA device"
PASSES = ("forward", "forward+backward")


def student_families() -> list[str]:
    """Every registered student model (a family registered later joins without a change here)."""
    from stgkd.nn.registry import model_names

    return model_names("student")


def value_order(names: list[str]) -> list[str]:
    """``names`` in order of value: Graph WaveNet (the teacher), the students, then every other model (the
    peers), each group alphabetical."""
    from stgkd.nn import MODELS

    def rank(name: str) -> tuple[int, str]:
        role = getattr(MODELS.get(name), "role", "")
        return (0 if name == "graph-wavenet" else 1 if role == "student" else 2, name)

    return sorted(names, key=rank)


def load_graph(num_nodes: int, week: Path | None = None) -> tuple[np.ndarray, str]:
    """METR-LA's adjacency (DCRNN's ``adj_mx.pkl`` of the week, :func:`benchmarks.suites.week_folder`) at 207
    sensors when it is there, else a seeded random graph; and what it is."""
    from benchmarks.suites import week_folder
    from stgkd.data.readers import read_adj_pickle
    from stgkd.errors import DataError

    if num_nodes == 207:
        try:
            _, adj = read_adj_pickle(week_folder(week) / "adj_mx.pkl")
            return np.asarray(adj, dtype=np.float32), "METR-LA (DCRNN adj_mx.pkl)"
        except DataError:  # the week's files are not here: a random graph of the size asked, named as such
            pass
    return random_graph(num_nodes), f"random, 8 out-edges per node, seed 0 (N={num_nodes})"


def _main_lineup(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """``(label, config)`` of the main section, teacher first."""
    lineup = [] if args.no_teacher else [("graph-wavenet", model_config("graph-wavenet", args.nodes))]
    return lineup + [(f"{s}-h{w}", model_config(s, args.nodes, in_channels=args.student_channels, hidden=w))
                     for s in args.students for w in args.widths]


def probe_captures(args: argparse.Namespace, deadline: Deadline | None = None,
                   known: dict[str, str | None] | None = None) -> dict[str, str | None]:
    """The probe verdict of every CUDA-graph setting of the main section (:func:`benchmarks.capture.probe`;
    those in ``known`` are not probed again); ``{}`` without CUDA graphs to time."""
    if "main" not in args.sections or "cuda-graph" not in args.modes or args.device_kind != "cuda":
        return {}
    adj = random_graph(args.nodes, seed=0)
    jobs = [CaptureJob(setting_key(config, b, d), config, adj, b, d)
            for _, config in _main_lineup(args) for d in args.dtypes for b in args.batch]
    return probe_missing(jobs, known, device=args.device, deadline=deadline)


def _timed(rows: list[dict[str, Any]], section: str, label: str, make: Callable[[], Any], *, batches, modes, dtypes,
           args, nodes: int, deadline: Deadline, verdicts: dict[str, str | None], config=None) -> None:
    """Time ``make()`` in every (mode, precision, batch), one row each; a setting the probe refused, or that
    fails, is a row saying why, and the next one runs."""
    deadline.check(f"{section}: {label} n={nodes}")
    try:
        model = make()
    except Exception as exc:  # a missing optional dependency or an unbuildable size: recorded, not fatal
        rows.append({"section": section, "model": label, "nodes": nodes, "skipped": one_line(exc)})
        return
    for mode in modes:
        for dtype in dtypes:
            for batch in batches:
                row = {"section": section, "model": label, "nodes": nodes, "batch": batch, "mode": mode,
                       "dtype": dtype, "threads": torch.get_num_threads()}
                if mode == "cuda-graph" and args.device_kind != "cuda":
                    rows.append({**row, "skipped": NO_CUDA})
                    continue
                deadline.check(f"{section}: {label} n={nodes} b={batch} {mode} {dtype}")
                verdict = verdicts.get(setting_key(config, batch, dtype)) if config else None
                r, why = timed(model, batch=batch, mode=mode, dtype=dtype, verdict=verdict, device=args.device,
                               warmup=args.warmup, iters=args.iters, name=label)
                rows.append({**row, "skipped": why} if r is None else {"section": section, **r.to_dict(),
                                                                       "threads": row["threads"]})
                log(f"{label} n={nodes} b={batch} {mode} {dtype}: " + (why or f"median {r.median_ms:.3f} ms"
                                                                        + (" (busy machine)" if r.busy else "")))


def collect(args: argparse.Namespace, rows: list[dict[str, Any]], deadline: Deadline | None = None,
            verdicts: dict[str, str | None] | None = None) -> None:
    """Measure the main and peers sections of ``args`` (:func:`resolve_args`) into ``rows``, one row per setting;
    past ``deadline`` :class:`~benchmarks.budget.OutOfTime` keeps the rows measured. ``verdicts``: the capture
    probe's (:func:`probe_captures`; probed here when ``None``)."""
    from stgkd.nn import build
    from stgkd.nn.registry import from_config

    deadline = deadline or Deadline()
    verdicts = probe_captures(args, deadline) if verdicts is None else verdicts
    adj = torch.from_numpy(random_graph(args.nodes, seed=0))
    common = dict(args=args, nodes=args.nodes, deadline=deadline, verdicts=verdicts)
    if "main" in args.sections:
        for label, config in _main_lineup(args):
            _timed(rows, "main", label, lambda c=config: from_config(c, adj), batches=args.batch, modes=args.modes,
                   dtypes=args.dtypes, config=config, **common)
    if "peers" in args.sections:
        import stgkd.nn.peers  # noqa: F401  (registers the peers)

        for peer, name in PEERS.items():
            hp = {"hidden": args.peer_hidden} if name.startswith("pgt-") else {}
            _timed(rows, "peers", f"pgt-{peer}", lambda n=name, h=hp: build(n, num_nodes=args.nodes, graph=adj, **h),
                   batches=args.peer_batch, modes=["eager"], dtypes=["fp32"], **common)


def time_models(names: list[str], adj: np.ndarray, *, batches: list[int], dtypes: list[str], device: torch.device,
                warmup: int, iters: int, rows: list[dict[str, Any]] | None = None,
                deadline: Deadline | None = None) -> list[dict[str, Any]]:
    """Forward and forward+backward milliseconds of every model in ``names`` at each batch and precision (a
    fitted baseline has no backward), appended to ``rows`` and returned. Past ``deadline`` it raises
    :class:`~benchmarks.budget.OutOfTime` before the next setting; a setting that fails is a row with its error."""
    from stgkd.nn import MODELS, build, count_flops

    rows = [] if rows is None else rows
    deadline = deadline or Deadline()
    nan = dict.fromkeys(("median_ms", "mean_ms", "std_ms", "min_ms"), float("nan"))
    for name in names:
        role = getattr(MODELS.get(name), "role", "")
        for batch in batches:
            deadline.check(f"{name} B={batch}")
            base = {"model": name, "role": role, "batch": batch, "iters": iters, "warmup": warmup,
                    "device": str(device), "error": ""}
            try:
                torch.manual_seed(0)
                model = build(name, num_nodes=adj.shape[0], graph=adj).to(device).eval()
                x = torch.randn(batch, model.in_steps, adj.shape[0], model.in_channels,
                                generator=torch.Generator().manual_seed(0)).to(device)
                params, gflops = model.num_parameters(), round(count_flops(model, x) / 1e9, 4)
            except Exception as exc:  # one broken model must not hide the others
                rows.append({**base, "dtype": "-", "passes": "-", **nan, "parameters": 0, "gflops": 0.0,
                             "error": one_line(exc)})
                continue
            for dtype in dtypes:
                for p in PASSES if role != "baseline" else PASSES[:1]:
                    deadline.check(f"{name} B={batch} {dtype} {p}")
                    row = {**base, "dtype": dtype, "passes": p, "parameters": params, "gflops": gflops,
                           "precision": inference_precision(model, dtype).method}
                    try:
                        if p == "forward":
                            r = stgkd.latency.measure(model, batch_size=batch, device=device, dtype=dtype,
                                                      warmup=max(1, warmup), iters=iters, name=name)
                            stats = {k: getattr(r, k) for k in nan}
                        else:
                            stats = {k: v for k, v in stgkd.latency.measure_train_step(
                                model, x, dtype=dtype, warmup=warmup, iters=iters).items() if k in nan}
                    except Exception as exc:
                        stats, row["error"] = nan, one_line(exc)
                        stgkd.latency.release_cached_memory()
                    rows.append({**row, **stats})
                    log(f"{name} B={batch} {dtype} {p}: " + (row["error"] or f"{stats['median_ms']:.2f} ms"))
            del model
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="cuda, cpu or auto (default: cuda when available)")
    p.add_argument("--sections", nargs="+", default=list(SECTIONS[:2]), choices=SECTIONS,
                   help="default: main peers")
    p.add_argument("--nodes", type=int, default=207, help="graph size (default: 207)")
    p.add_argument("--students", nargs="+", default=None, help="main: models timed at each width (default: "
                   "every registered student family)")
    p.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--student-channels", type=int, default=2,
                   help="main: the students' input channels (default: 2; 4 with --seasonal day); the teacher reads 2")
    p.add_argument("--no-teacher", action="store_true", help="main: leave Graph WaveNet out")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 64], help="main and timing (default: 1 64)")
    p.add_argument("--modes", nargs="+", default=["eager", "cuda-graph"], choices=stgkd.latency.MODES)
    p.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    p.add_argument("--peer-hidden", type=int, default=32)
    p.add_argument("--peer-batch", type=int, nargs="+", default=[1], help="peers (default: 1)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--threads", type=int, nargs="+", default=None,
                   help="CPU thread counts, every setting timed once per count (default: torch's choice)")
    return add_record_args(p, allow_busy=True)


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill in what the parser leaves open: the device and the student families."""
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.device_kind = torch.device(args.device).type
    args.students = args.students or student_families()
    return args


def _head(args: argparse.Namespace, command: str, started: dt.datetime, load: list[float] | None,
          rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What a record of this script says of itself: schema, date, command, environment, load and busy."""
    from benchmarks.table.records import SCHEMA

    threads = sorted({r["threads"] for r in rows if "threads" in r}) or [torch.get_num_threads()]
    return {"schema": SCHEMA, "started": started.isoformat(timespec="seconds"), "date": started.strftime("%Y-%m-%d"),
            "command": command, "device_kind": args.device_kind, "notes": [],
            "environment": {**environment(args.device_kind), "threads": threads,
                            "device_name": device_name(args.device).rsplit(" (", 1)[0]},
            "load_average": {"start": load, "end": stgkd.latency.load_average()},
            "busy": any(r.get("busy") for r in rows) or is_busy(load),
            "seconds": round((dt.datetime.now(dt.timezone.utc) - started).total_seconds(), 1)}


def make_report(args: argparse.Namespace, rows: list[dict[str, Any]], started: dt.datetime,
                load: list[float] | None, *, command: str) -> dict[str, Any]:
    """The ``latency`` record of the main and peers rows (what ``benchmarks/table`` renders)."""
    return {**_head(args, command, started, load, rows), "suite": "latency", "protocol": "latency",
            "title": f"Inference latency ({args.nodes} sensors, 12 -> 12)", "students": list(args.students),
            "widths": list(args.widths), "settings": {k: v for k, v in vars(args).items() if k != "out"},
            "results": rows}


def timing_record(rows: list[dict[str, Any]], *, graph: str, nodes: int, batches: list[int], warmup: int,
                  iters: int, order: list[str]) -> dict[str, Any]:
    """The ``model-timing`` record's own entries (what ``benchmarks/table`` renders)."""
    return {"suite": "model-timing", "protocol": "model-timing",
            "title": f"Forward and forward+backward time, batch {' and '.join(map(str, batches))}",
            "graph": graph, "nodes": nodes, "batch": batches[0] if len(batches) == 1 else batches, "warmup": warmup,
            "iters": iters, "order": order, "models": rows}


def main(argv: list[str] | None = None) -> int:
    import stgkd.nn.peers  # noqa: F401  (registers the peers: the timing section times them too)
    from stgkd.nn import MODELS

    argv = list(sys.argv[1:] if argv is None else argv)
    args = resolve_args(build_parser().parse_args(argv))
    if args.device_kind == "cuda" and not torch.cuda.is_available():
        print("benchmarks.latency: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    if refuse_busy("benchmarks.latency", args.allow_busy):
        return EXIT_BUSY
    started, load = dt.datetime.now(dt.timezone.utc), stgkd.latency.load_average()
    command = "python -m benchmarks.latency " + shlex.join(argv)
    rows: list[dict[str, Any]] = []
    timing: list[dict[str, Any]] = []
    adj, graph = load_graph(args.nodes) if "timing" in args.sections else (None, "")
    order = value_order(MODELS.names())
    for threads in args.threads or [None]:
        with cpu_threads(threads):
            collect(args, rows)
            if adj is not None:
                time_models(order, adj, batches=args.batch, dtypes=args.dtypes, device=torch.device(args.device),
                            warmup=args.warmup, iters=args.iters, rows=timing)
    suffix = f"{args.device_kind}-{started:%Y%m%d}{'-' + args.tag if args.tag else ''}"
    if rows:
        report = make_report(args, rows, started, load, command=command)
        write_record(args.out / f"latency-{suffix}", report, to_markdown(report))
    if timing:
        from benchmarks.table.latency import models_table

        record = {**_head(args, command, started, load, []), **timing_record(
            timing, graph=graph, nodes=args.nodes, batches=args.batch, warmup=args.warmup, iters=args.iters,
            order=order)}
        write_record(args.out / f"model-timing-{suffix}", record, "\n".join(
            _md_head(record) + [f"- graph: {graph}; forward in eval mode, forward+backward in train mode", ""]
            + models_table(timing)) + "\n")
    return 0


def _md_head(report: dict[str, Any]) -> list[str]:
    env, load = report["environment"], report["load_average"]
    lines = [f"# {report['title'].split(' (')[0]} ({report['device_kind'].upper()})", "",
             f"- device: **{report['device_kind'].upper()}**, {env['device_name']}; torch {env['torch']}, CUDA "
             f"{env['cuda']}, Python {env['python']}; CPU threads {env['threads']}",
             f"- date: {report['started']} ({report['seconds']} s); load average at start {load['start']}, at end "
             f"{load['end']}", f"- command: `{report['command']}`"]
    if report["busy"]:
        lines += ["", "> **Busy machine**: the load average exceeded the core count; rows timed busy say so and "
                      "RESULTS.md leaves them out."]
    return lines


def _row(r: dict[str, Any]) -> list[Any]:
    cells = [r["model"], f"{r['parameters']:,}" if "parameters" in r else "", r.get("nodes", ""), r.get("batch", ""),
             r.get("threads", ""), r.get("mode", ""), r.get("dtype", "")]
    if "skipped" in r:
        return cells + [f"skipped: {r['skipped']}", "", "", ""]
    if r.get("busy"):
        return cells + [f"busy, not a figure (load {(r.get('load_average') or ['?'])[0]})", "", "", ""]
    return cells[:6] + [precision_label(r["dtype"], r.get("precision")), f"{r['median_ms']:.3f}", f"{r['p90_ms']:.3f}",
                        f"{r['p99_ms']:.3f}", f"{r['throughput']:,.0f}"]


def to_markdown(report: dict[str, Any]) -> str:
    """The latency record as Markdown: conditions, then one table per section (skipped settings say why)."""
    st = report["settings"]
    lines = _md_head(report) + [f"- warm-up {st['warmup']}, timed calls {st['iters']}; per-call ms, forecasts/s = "
                                "batch / median", ""]
    for section in SECTIONS[:2]:
        rows = [r for r in report["results"] if r["section"] == section]
        if rows:
            lines += [f"## {section}", ""] + table(["model", "params", "nodes", "batch", "threads", "mode", "dtype",
                                                    "median ms", "p90 ms", "p99 ms", "forecasts/s"], map(_row, rows))
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
