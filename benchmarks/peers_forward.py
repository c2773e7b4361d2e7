"""Forward time of the peer teachers (stgkd.nn.peers) on the CPU.

Usage::

    python -m benchmarks.peers_forward --threads 1 2 --batch 1 64 --nodes 207 --repeats 5

Prints one Markdown table row per (model, threads, batch): median and min of ``repeats`` timed
forwards after one warm-up, in ``torch.no_grad()`` and eval mode, with a random graph of the given
density (the wrappers' cost does not depend on the weights, only on the edge count).

Refuses to start on a busy machine (1-minute load average above the core count; exit code 2,
:mod:`benchmarks.idle`); with ``--allow-busy`` it times anyway and a row timed while the machine was busy
says "busy, not a figure" instead of its times.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch

from benchmarks.idle import EXIT_BUSY, add_allow_busy, busy_now, refuse_busy
from benchmarks.table.records import BUSY
from stgkd.nn import peers  # noqa: F401  (registers the models)
from stgkd.nn.registry import build

NAMES = ("dcrnn", "stgcn", "agcrn", "mtgnn")


@dataclass
class ForwardTiming:
    model: str
    threads: int
    batch: int
    nodes: int
    edges: int
    parameters: int
    median_ms: float
    min_ms: float
    repeats: int
    busy: bool = False


def random_graph(nodes: int, density: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    adj = torch.rand(nodes, nodes, generator=g) * (torch.rand(nodes, nodes, generator=g) < density)
    return adj + torch.eye(nodes)


def time_forward(
    name: str, *, threads: int, batch: int, nodes: int = 207, density: float = 0.04, repeats: int = 5
) -> ForwardTiming:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    adj = random_graph(nodes, density)
    model = build(name, num_nodes=nodes, graph=adj).eval()
    x = torch.randn(batch, 12, nodes, 2)
    times = []
    with torch.no_grad():
        model(x)
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1e3)
    return ForwardTiming(
        model=name,
        threads=threads,
        batch=batch,
        nodes=nodes,
        edges=int((adj != 0).sum()),
        parameters=model.num_parameters(),
        median_ms=statistics.median(times),
        min_ms=min(times),
        repeats=repeats,
        busy=busy_now(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(NAMES))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--nodes", type=int, default=207)
    parser.add_argument("--density", type=float, default=0.04)
    parser.add_argument("--repeats", type=int, default=5)
    add_allow_busy(parser)
    args = parser.parse_args(argv)
    if refuse_busy("benchmarks.peers_forward", args.allow_busy):
        return EXIT_BUSY
    print("| model | threads | batch | nodes | edges | params | median ms | min ms |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models:
        for threads in args.threads:
            for batch in args.batch:
                r = time_forward(
                    name, threads=threads, batch=batch, nodes=args.nodes, density=args.density, repeats=args.repeats
                )
                times = f"{BUSY} | " if r.busy else f"{r.median_ms:.1f} | {r.min_ms:.1f} |"
                print(f"| {r.model} | {r.threads} | {r.batch} | {r.nodes} | {r.edges} | {r.parameters:,} | {times}",
                      flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
