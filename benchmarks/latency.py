"""Inference latency of the teacher, the students and the PGT peers, in one run.

Everything is timed by :func:`stgkd.latency.measure` (CUDA events with a synchronised start on a GPU,
``perf_counter`` on a CPU) on untrained models of the right shape; latency does not depend on the weights.
Three sections:

* ``main``: Graph WaveNet and every registered student family (``stgkd.nn.registry.model_names("student")``:
  ``gru``, ``gcn-gru``, and any added later) at widths 16/32/64 on a 207-node graph, batch 1 and 64, eager and
  CUDA graph, fp32 and bf16 (autocast, or the model cast whole where it has recurrent layers; each row's
  ``precision`` says which, :func:`stgkd.precision.inference_precision`);
* ``scaling``: teacher and one student (``gcn-gru``, width 32) at batch 1, eager, fp32, on 207 / 883 /
  2000 / 8600 nodes (METR-LA, PEMS07, a mid size, and a California-wide network);
* ``peers``: PyTorch Geometric Temporal models at batch 1 (``--peer-batch``), eager, fp32, 207 nodes: ``A3TGCN2``,
  ``TGCN2`` stepped over the window, ``BatchedDCRNN`` (stgkd's ``dcrnn`` wrapper) and ``MTGNN``
  (stgkd's ``mtgnn`` wrapper); skipped with the reason when PGT is not installed.

On CUDA, every CUDA-graph setting is first captured in a child process (:func:`benchmarks.capture.probe`): a
setting that does not capture is recorded ``"not capturable: <reason>"`` (its eager rows are still
measured), and only settings the probe captured are captured here, so one model's failed capture cannot
poison the allocator for the others. A setting that fails for any other reason (out of memory) is
recorded with the reason; the rows measured before it stay.

Graphs are seeded random (8 neighbours per node, as a thresholded road-distance kernel gives). Results go
to ``benchmarks/results/latency-<device kind>-<date>[-tag].json`` (a ``stgkd-bench`` record that
``benchmarks/table`` renders into RESULTS.md) and ``.md`` with the command, device, date and load
average. Settings a CPU cannot run (CUDA graphs) are rows with ``"skipped": "no CUDA device"``, never
figures. ``--threads 1 2`` times every setting once per CPU thread count (each row says its ``threads``).
:func:`collect` is the measuring loop without the files (``python -m benchmarks.gpu`` calls it under a
time budget).

The script refuses to start on a busy machine (1-minute load average above the core count; exit code 2,
see :mod:`benchmarks.idle`); ``--allow-busy`` times anyway, and every row measured while the machine was
busy says ``"busy": true`` and is left out of RESULTS.md's tables.

    python -m benchmarks.latency                      # the full grid (GPU machine)
    # the CPU table of RESULTS.md, on an idle machine:
    python -m benchmarks.latency --device cpu --sections main peers --nodes 207 --batch 1 64 --peer-batch 1 64 \\
        --modes eager --dtypes fp32 --threads 1 2 --iters 10 --warmup 2 --tag idle
    python -m benchmarks.latency --quick              # reduced CPU run (smaller iters, sizes)
    python -m benchmarks.latency --sections main --widths 32 --batch 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from benchmarks.budget import Deadline
from benchmarks.capture import CaptureJob, model_config, not_capturable, probe_missing, setting_key
from benchmarks.idle import EXIT_BUSY, add_allow_busy, refuse_busy
import stgkd.latency
from stgkd.latency import (CaptureError, LatencyResult, cpu_threads, device_name, is_busy, measure, random_graph,
                           release_cached_memory)
from stgkd.precision import precision_label

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = ("main", "scaling", "peers")
#: the peers section's labels and the registered models they time: PGT's batched ``A3TGCN2`` and ``TGCN2``
#: cells over the window (:class:`stgkd.nn.peers.PGTA3TGCN`, :class:`~stgkd.nn.peers.PGTTGCN`), DCRNN and MTGNN
PEERS = {"a3tgcn2": "pgt-a3tgcn", "tgcn2-stepped": "pgt-tgcn", "batched-dcrnn": "dcrnn", "mtgnn": "mtgnn"}
NO_CUDA = "no CUDA device"


def student_families() -> list[str]:
    """Every registered student model (a family registered later joins without a change here)."""
    from stgkd.nn.registry import model_names

    return model_names("student")


# --------------------------------------------------------------------------- peers


def build_peer(name: str, adj: Tensor, *, hidden: int) -> nn.Module:
    """One of :data:`PEERS`, the registered model it names (:mod:`stgkd.nn.peers`; raises
    MissingDependencyError when PGT is absent)."""
    import stgkd.nn.peers  # noqa: F401  (registers the peers)
    from stgkd.nn import build

    registered = PEERS[name]
    hparams = {"hidden": hidden} if registered.startswith("pgt-") else {}
    return build(registered, num_nodes=adj.shape[0], graph=adj, **hparams)


# --------------------------------------------------------------------------- runs


def _student(name: str, n: int, adj: Tensor, width: int) -> nn.Module:
    from stgkd.nn import build

    return build(name, num_nodes=n, graph=adj, hidden=width)


def _teacher(n: int, adj: Tensor) -> nn.Module:
    from stgkd.nn import build

    return build("graph-wavenet", num_nodes=n, graph=adj)


def _main_lineup(args: argparse.Namespace) -> list[tuple[str, dict[str, Any], list[int], list[str]]]:
    """``(label, config, batches, dtypes)`` of the main section, teacher first."""
    n = args.nodes
    lineup = []
    if not args.no_teacher:
        lineup.append(("graph-wavenet", model_config("graph-wavenet", n), args.teacher_batch or args.batch,
                       args.teacher_dtypes or args.dtypes))
    for student in args.students:
        for width in args.widths:
            lineup.append((f"{student}-h{width}", model_config(student, n, in_channels=args.student_channels,
                                                                hidden=width), args.batch, args.dtypes))
    return lineup


def probe_captures(args: argparse.Namespace, deadline: Deadline | None = None,
                   known: dict[str, str | None] | None = None) -> dict[str, str | None]:
    """The probe verdict of every CUDA-graph setting of the main section (:func:`benchmarks.capture.probe`,
    keyed by :func:`~benchmarks.capture.setting_key`; those in ``known`` are not probed again); ``{}`` when
    no CUDA graph is asked for or there is no CUDA device."""
    if "main" not in args.sections or "cuda-graph" not in args.modes or args.device_kind != "cuda":
        return {}
    adj = random_graph(args.nodes, seed=0)
    jobs = [CaptureJob(setting_key(config, b, d), config, adj, b, d)
            for _, config, batches, dtypes in _main_lineup(args) for d in dtypes for b in batches]
    return probe_missing(jobs, known, device=args.device, deadline=deadline)


def _timed(rows: list[dict[str, Any]], section: str, label: str, make: Callable[[], nn.Module], *,
           batches, modes, dtypes, args, nodes: int, deadline: Deadline | None = None,
           verdicts: dict[str, str | None] | None = None, config: dict[str, Any] | None = None) -> None:
    """Time ``make()`` in every (mode, precision, batch), one row each. A CUDA-graph setting whose probe
    verdict (``verdicts``, by :func:`~benchmarks.capture.setting_key` of ``config``) says it does not capture
    is recorded as not capturable and not tried; a setting that fails is recorded with the reason and the
    next one runs."""
    deadline = deadline or Deadline()
    verdicts = verdicts or {}
    deadline.check(f"{section}: {label} n={nodes}")
    try:
        model = make()
    except Exception as exc:  # a missing optional dependency or an unbuildable size: recorded, not fatal
        rows.append({"section": section, "model": label, "nodes": nodes, "skipped": f"{type(exc).__name__}: {exc}"})
        print(f"  {label} n={nodes}: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
        return
    for mode in modes:
        for dtype in dtypes:
            for batch in batches:
                setting = {"section": section, "model": label, "nodes": nodes, "batch": batch, "mode": mode,
                           "dtype": dtype}
                if mode == "cuda-graph" and args.device_kind != "cuda":
                    rows.append({**setting, "threads": torch.get_num_threads(), "skipped": NO_CUDA})
                    continue
                verdict = (verdicts.get(setting_key(config, batch, dtype))
                           if mode == "cuda-graph" and config is not None else None)
                if verdict is not None:
                    rows.append({**setting, "skipped": not_capturable(verdict)})
                    print(f"  {label} n={nodes} b={batch} {mode} {dtype}: {not_capturable(verdict)}", file=sys.stderr)
                    continue
                deadline.check(f"{section}: {label} n={nodes} b={batch} {mode} {dtype}")
                try:
                    r: LatencyResult = measure(model, batch_size=batch, device=args.device, mode=mode, dtype=dtype,
                                               warmup=args.warmup, iters=args.iters, name=label)
                except Exception as exc:  # out of memory at 8600 nodes, a capture: recorded with the reason
                    if args.debug:
                        traceback.print_exc()
                    why = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
                    rows.append({**setting, "skipped": not_capturable(why) if isinstance(exc, CaptureError) else why})
                    print(f"  {label} n={nodes} b={batch} {mode} {dtype}: failed ({why})", file=sys.stderr)
                    release_cached_memory()  # does nothing once a capture failed in this process
                    continue
                row = {"section": section, **r.to_dict(), "threads": torch.get_num_threads()}
                rows.append(row)
                print(f"  {label:<22} n={nodes:<5} b={batch:<3} {mode:<10} {dtype:<5} t={row['threads']:<2} median "
                      f"{r.median_ms:9.3f} ms  p90 {r.p90_ms:9.3f}  {r.throughput:12,.0f}/s"
                      + ("  (busy machine)" if r.busy else ""), file=sys.stderr)
    del model


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="cuda, cpu or auto (default: auto = cuda when available)")
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    p.add_argument("--nodes", type=int, default=207, help="graph size of the main and peer sections")
    p.add_argument("--students", nargs="+", default=None,
                   help="student families (default: every registered student model)")
    p.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    p.add_argument("--modes", nargs="+", default=["eager", "cuda-graph"], choices=["eager", "cuda-graph", "compile"])
    p.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    p.add_argument("--student-channels", type=int, default=2,
                   help="input channels of the students in the main section (default: 2, reading and time of day; "
                        "4 with --seasonal day); the teacher reads 2")
    p.add_argument("--scaling-nodes", type=int, nargs="+", default=[207, 883, 2000, 8600])
    p.add_argument("--scaling-student", default="gcn-gru")
    p.add_argument("--scaling-width", type=int, default=32)
    p.add_argument("--peers", nargs="+", default=list(PEERS), choices=list(PEERS))
    p.add_argument("--peer-hidden", type=int, default=32)
    p.add_argument("--peer-batch", type=int, nargs="+", default=[1],
                   help="batch sizes of the PGT peers (eager, fp32; default: 1)")
    p.add_argument("--no-teacher", action="store_true", help="leave Graph WaveNet out (slow on CPUs)")
    p.add_argument("--teacher-batch", type=int, nargs="+", default=None,
                   help="batch sizes for Graph WaveNet in the main section (default: --batch)")
    p.add_argument("--teacher-dtypes", nargs="+", default=None, choices=["fp32", "bf16", "fp16"],
                   help="precisions for Graph WaveNet in the main section (default: --dtypes)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--quick", action="store_true",
                   help="reduced run for CPUs: iters 20, warmup 3, scaling 207/883, widths and batches as given")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default: {RESULTS})")
    p.add_argument("--tag", default="", help="suffix of the result file names")
    p.add_argument("--threads", type=int, nargs="+", default=None,
                   help="torch CPU thread counts: every setting is timed once per count, e.g. --threads 1 2 "
                        "(default: torch's choice)")
    add_allow_busy(p)
    p.add_argument("--debug", action="store_true")
    return p


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill in what the parser leaves open: the device, the student families, ``--quick``."""
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.device_kind = torch.device(args.device).type
    if args.students is None:
        args.students = student_families()
    if args.quick:
        args.iters, args.warmup = min(args.iters, 20), min(args.warmup, 3)
        if args.scaling_nodes == [207, 883, 2000, 8600]:
            args.scaling_nodes = [207, 883]
    return args


def collect(args: argparse.Namespace, rows: list[dict[str, Any]], deadline: Deadline | None = None,
            verdicts: dict[str, str | None] | None = None) -> None:
    """Measure the sections of ``args`` (resolved by :func:`resolve_args`), appending one row per setting
    to ``rows``. Past ``deadline`` it raises :class:`~benchmarks.budget.OutOfTime` before the next setting;
    the rows measured so far stay in ``rows``. ``verdicts`` are the CUDA-graph probe's
    (:func:`probe_captures`; probed here when ``None``)."""
    if verdicts is None:
        verdicts = probe_captures(args, deadline)
    if "main" in args.sections:
        from stgkd.nn.registry import from_config

        n = args.nodes
        adj = torch.from_numpy(random_graph(n, seed=0))
        for label, config, batches, dtypes in _main_lineup(args):
            _timed(rows, "main", label, lambda c=config: from_config(c, adj), batches=batches, modes=args.modes,
                   dtypes=dtypes, args=args, nodes=n, deadline=deadline, verdicts=verdicts, config=config)
    if "scaling" in args.sections:
        for n in args.scaling_nodes:
            adj = torch.from_numpy(random_graph(n, seed=0))
            common = dict(batches=[1], modes=["eager"], dtypes=["fp32"], args=args, nodes=n, deadline=deadline)
            if not args.no_teacher:
                _timed(rows, "scaling", "graph-wavenet", lambda: _teacher(n, adj), **common)
            label = f"{args.scaling_student}-h{args.scaling_width}"
            _timed(rows, "scaling", label, lambda: _student(args.scaling_student, n, adj, args.scaling_width), **common)
    if "peers" in args.sections:
        n = args.nodes
        adj = torch.from_numpy(random_graph(n, seed=0))
        for peer in args.peers:
            _timed(rows, "peers", f"pgt-{peer}", lambda p=peer: build_peer(p, adj, hidden=args.peer_hidden),
                   batches=args.peer_batch, modes=["eager"], dtypes=["fp32"], args=args, nodes=n, deadline=deadline)


def make_report(args: argparse.Namespace, argv: list[str], rows: list[dict[str, Any]], started: dt.datetime,
                load_before: list[float] | None, *, command: str | None = None) -> dict[str, Any]:
    """The JSON report of a run: conditions, settings and the rows, as a ``stgkd-bench`` record of protocol
    ``latency`` (what ``benchmarks/table`` renders); ``busy`` when any row was timed on a busy machine."""
    from benchmarks.record import environment
    from benchmarks.table.records import SCHEMA

    return {
        "schema": SCHEMA,
        "suite": "latency",
        "protocol": "latency",
        "title": f"Inference latency ({args.nodes} sensors, 12 -> 12)",
        "started": started.isoformat(timespec="seconds"),
        "environment": {**environment(args.device_kind),
                        "device_name": device_name(args.device).rsplit(" (", 1)[0],  # the threads are per row
                        "threads": sorted({r["threads"] for r in rows if "threads" in r}) or None,
                        "cpu_count": os.cpu_count()},
        "students": list(args.students),
        "widths": list(args.widths),
        "notes": [],
        "busy": any(r.get("busy") for r in rows) or is_busy(load_before),
        "command": command or "python -m benchmarks.latency " + shlex.join(argv),
        "device_kind": args.device_kind,
        "device": device_name(args.device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "date": started.strftime("%Y-%m-%d"),
        "seconds": round((dt.datetime.now(dt.timezone.utc) - started).total_seconds(), 1),
        "cpu_threads": torch.get_num_threads(),
        "load_average": {"start": load_before, "end": stgkd.latency.load_average()},
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "debug")},
        "results": rows,
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args = resolve_args(args)
    if args.device_kind == "cuda" and not torch.cuda.is_available():
        print("benchmarks.latency: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    if refuse_busy("benchmarks.latency", args.allow_busy):
        return EXIT_BUSY
    started = dt.datetime.now(dt.timezone.utc)
    load_before = stgkd.latency.load_average()
    rows: list[dict[str, Any]] = []
    print(f"# {args.device_kind}: {device_name(args.device)}; torch {torch.__version__}", file=sys.stderr)
    for threads in args.threads or [None]:
        with cpu_threads(threads):
            collect(args, rows)
    report = make_report(args, argv, rows, started, load_before)
    busy_rows = sum(1 for r in rows if r.get("busy"))
    if busy_rows:
        print(f"benchmarks.latency: {busy_rows} of {len(rows)} settings were timed while the load average exceeded "
              f"the {os.cpu_count()} cores; they are labelled busy and left out of RESULTS.md's tables",
              file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"latency-{args.device_kind}-{started:%Y%m%d}{'-' + args.tag if args.tag else ''}"
    json_path, md_path = args.out / f"{stem}.json", args.out / f"{stem}.md"
    json_path.write_text(json.dumps(report, indent=2, default=str))
    md_path.write_text(to_markdown(report))
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


def _rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def to_markdown(report: dict[str, Any]) -> str:
    """The report as markdown: conditions, then one table per section."""
    kind = report["device_kind"].upper()
    lines = [
        f"# Inference latency ({kind})",
        "",
        f"- device: **{kind}**, {report['device']}",
        f"- torch {report['torch']}, CUDA {report['cuda']}, Python {report['python']}",
        f"- load average (1/5/15 min) at start {report.get('load_average', {}).get('start')}, "
        f"at end {report.get('load_average', {}).get('end')}",
        f"- date: {report.get('started', report['date'])}, the whole run {report['seconds']} s; CPU threads "
        f"{(report.get('environment') or {}).get('threads') or report.get('cpu_threads')}",
        f"- command: `{report['command']}`",
        f"- warm-up {report['settings']['warmup']}, timed calls {report['settings']['iters']}; "
        "per-call latency in ms (median / p90 / p99), forecasts/s = batch / median; "
        "inputs (B, 12, N, 2) already on the device; bf16/fp16 = autocast",
        "",
    ]
    load = (report.get("load_average") or {}).get("start")
    cores = (report.get("environment") or {}).get("cpu_count") or report.get("cpu_threads") or 1
    busy_rows = [r for r in report["results"] if r.get("busy")]
    if busy_rows or is_busy(load, cores):
        lines += [f"> **Busy machine**: the load average exceeded the {cores} cores (at start {load}; "
                  f"{len(busy_rows)} settings timed busy, marked \"busy\"). Other processes competed for the CPU, "
                  "so those figures measure them too; RESULTS.md leaves them out.", ""]
    for section in SECTIONS:
        rows = [r for r in report["results"] if r["section"] == section]
        if not rows:
            continue
        lines += [f"## {section}", ""] + rows_table(rows) + [""]
    return "\n".join(lines)


def rows_table(rows: list[dict[str, Any]]) -> list[str]:
    """One markdown table row per setting (skipped settings say why)."""
    lines = ["| model | params | nodes | batch | threads | mode | dtype | median ms | p90 ms | p99 ms | forecasts/s |",
             "|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['model']} | | {r.get('nodes', '')} | {r.get('batch', '')} | {r.get('threads', '')} | "
                         f"{r.get('mode', '')} | {r.get('dtype', '')} | skipped: {r['skipped']} | | | |")
        elif r.get("busy"):
            lines.append(f"| {r['model']} | {r['parameters']:,} | {r['nodes']} | {r['batch']} | {r.get('threads', '')} | "
                         f"{r['mode']} | {r['dtype']} | busy, not a figure (load {(r.get('load_average') or ['?'])[0]} on "
                         f"{r.get('cpu_count')} cores) | | | |")
        else:
            lines.append(f"| {r['model']} | {r['parameters']:,} | {r['nodes']} | {r['batch']} | {r.get('threads', '')} | "
                         f"{r['mode']} | {precision_label(r['dtype'], r.get('precision'))} | {r['median_ms']:.3f} | {r['p90_ms']:.3f} | {r['p99_ms']:.3f} | "
                         f"{_rate(r['throughput'])} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
