"""The CPU GRU's cost per sequence against the number of sequences in one call, whole or in chunks.

``stgru`` runs one GRU over every (sensor, window) pair of a batch: N x B sequences. On the CPU, one
training step's forward + backward over them slows per sequence as the batch outgrows the caches; in
training the student therefore runs :data:`stgkd.nn.layers.recurrent.GRU_CPU_CHUNK` sequences at a time
(:func:`stgkd.nn.layers.recurrent.gru_final_state`). This times that choice on one thread: 12 steps, the
student's input channels and width, the final state's sum as the loss, the best of ``--repeats`` calls
after one untimed call.

    python -m benchmarks.gru_chunk                       # 13,248 and 68,800 sequences, whole and chunked
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.idle import add_allow_busy, refuse_busy
from benchmarks.record import write_record
from stgkd.nn.layers.recurrent import gru_final_state

REPO = Path(__file__).resolve().parents[1]


def seconds_per_step(gru: torch.nn.GRU, seqs: torch.Tensor, chunk: int | None, repeats: int) -> float:
    """The best wall seconds of ``repeats`` forward + backward passes (one untimed first)."""
    def step() -> None:
        state = gru_final_state(gru, seqs, chunk) if chunk else gru(seqs)[1][-1]
        state.sum().backward()

    step()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t0)
    return best


def render(report: dict[str, Any]) -> str:
    lines = ["# The CPU GRU per sequence: one call against chunks", "",
             f"- date: {report['date']}", f"- command: `{report['command']}`", f"- machine: {report['machine']}",
             f"- load average at start {report['load_average_start']}, at end {report['load_average_end']}", "",
             f"Forward + backward of `nn.GRU({report['channels']}, {report['hidden']})` over {report['steps']} steps, "
             "the final state's sum as the loss, best of the repeats; µs per sequence.", "",
             "| sequences | chunk | s per step | µs per sequence |", "|---:|---|---:|---:|"]
    for r in report["rows"]:
        lines.append(f"| {r['sequences']:,} | {r['chunk'] or 'one call'} | {r['seconds']:.3f} | "
                     f"{r['us_per_sequence']:.1f} |")
    lines += ["", "```json", json.dumps(report, indent=1), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gru_chunk", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, nargs="+", default=[13248, 68800],
                        help="sequences per call (default: 207 sensors x 64 windows, 8,600 x 8)")
    parser.add_argument("--chunks", type=int, nargs="+", default=[0, 1024, 2048, 4096, 8192],
                        help="chunk sizes, 0 = one call (default: 0 1024 2048 4096 8192)")
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    add_allow_busy(parser)
    args = parser.parse_args(argv)
    if refuse_busy(parser.prog, args.allow_busy):
        return 2

    from benchmarks.record import environment
    from stgkd.latency import load_average

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    env = environment("cpu")
    stamp = dt.datetime.now(dt.timezone.utc)
    report: dict[str, Any] = {
        "date": stamp.isoformat(timespec="minutes"),
        "command": "python -m benchmarks.gru_chunk " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "machine": f"cpu: {env['device_name']}, {os.cpu_count()} CPUs, torch {env['torch']}, {args.threads} thread(s)",
        "channels": args.channels, "hidden": args.hidden, "steps": args.steps,
        "load_average_start": load_average(), "rows": [],
    }
    gru = torch.nn.GRU(args.channels, args.hidden, batch_first=True)
    for n in args.sequences:
        seqs = torch.randn(n, args.steps, args.channels)
        for chunk in args.chunks:
            s = seconds_per_step(gru, seqs, chunk or None, args.repeats)
            report["rows"].append({"sequences": n, "chunk": chunk or None, "seconds": s, "us_per_sequence": s / n * 1e6})
            print(f"{n} sequences, chunk {chunk or 'none'}: {s:.3f} s, {s / n * 1e6:.1f} us per sequence", flush=True)
    report["load_average_end"] = load_average()
    stem = args.out / f"gru-chunk-cpu-{stamp:%Y-%m-%d}"
    write_record(stem, report, render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
