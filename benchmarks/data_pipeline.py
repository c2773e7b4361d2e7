"""Data pipeline benchmark: ``prepare`` setup time, its peak memory, and batches served per second.

For series the size of METR-LA (34272 steps x 207 sensors) and PEMS07 (28224 x 883), made by
:func:`stgkd.data.synthetic.generate`, each case runs in a fresh subprocess (so the peak resident
set size belongs to that case alone) with ``torch.set_num_threads(1)``:

* ``setup_s``: wall time of ``prepare(data)`` (12 in, 12 out, time of day);
* ``peak_extra``: growth of the peak RSS (``ru_maxrss``) during ``prepare`` over the RSS just before
  it, against the raw array (``T x N`` float32), plus the numpy peak seen by ``tracemalloc``
  (torch's allocator is invisible to tracemalloc, RSS sees both);
* ``batches_per_s``: batches of 64 from a shuffled train loader (gather x, y and the mask), per
  second of wall time and per second of this process's CPU time (the second is the figure to
  trust on a shared, loaded machine; the 1-minute load average is recorded beside it).

Goals: ``peak_extra <= 2 x raw`` and ``>= 2000`` batches/s for the METR-LA size on one core.

Run: ``python -m benchmarks.data_pipeline [--cases metr-la pems07] [--seconds 3] [--out DIR]``.

Refuses to start on a busy machine (1-minute load average above the core count; exit code 2,
:mod:`benchmarks.idle`); with ``--allow-busy`` it measures anyway, and a case served while the machine was
busy says "busy, not a figure" instead of its batches per second (its memory figures stand).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.idle import EXIT_BUSY, add_allow_busy, refuse_busy
from benchmarks.table.records import BUSY

CASES = {"metr-la": (34272, 207), "pems07": (28224, 883)}
GOAL_MEMORY_RATIO = 2.0
GOAL_BATCHES_PER_S = 2000.0
REPO = Path(__file__).resolve().parents[1]


@dataclass
class CaseResult:
    case: str
    steps: int
    nodes: int
    raw_mb: float
    generate_s: float
    setup_s: float
    peak_extra_mb: float
    peak_extra_ratio: float
    tracemalloc_peak_mb: float
    inputs_mb: float
    batches_per_s: float
    batches_per_cpu_s: float
    load_average: float
    batch_size: int
    batches_timed: int
    windows_train: int
    busy: bool = False  # the machine was busy while the case was served (benchmarks.idle.busy_now)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _maxrss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def worker(values_path: str, case: str, generate_s: float, seconds: float, batch_size: int) -> CaseResult:
    """Measure one case in this (fresh) process; the series is read from ``values_path`` (.npy)."""
    import tracemalloc

    import numpy as np
    import pandas as pd
    import torch

    from stgkd.data.core import TrafficData
    from stgkd.data.windows import prepare

    torch.set_num_threads(1)
    values = np.load(values_path)
    adj = np.load(values_path.replace(".npy", "-adj.npy"))
    t, n = values.shape[:2]
    data = TrafficData(values=values, adj=adj, sensor_ids=[str(i) for i in range(n)],
                       timestamps=pd.date_range("2024-01-01", periods=t, freq="5min"), name=case)
    raw = values[..., 0].nbytes
    tiny = TrafficData(values=values[:200, :4], adj=adj[:4, :4], sensor_ids=list("abcd"),
                       timestamps=data.timestamps[:200], name="warm-up")
    prepare(tiny).train.batch(torch.arange(4))  # lazy initialisation outside the measurement

    rss_before = _rss_bytes()
    tracemalloc.start()
    start = time.perf_counter()
    prep = prepare(data)
    setup_s = time.perf_counter() - start
    _, trace_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak_extra = max(0, _maxrss_bytes() - rss_before)

    loader = prep.loader("train", batch_size, shuffle=True, seed=0, drop_last=True)
    for i, _ in enumerate(loader):  # warm-up
        if i == 20:
            break
    count = 0
    start = time.perf_counter()
    cpu_start = time.process_time()
    while time.perf_counter() - start < seconds:
        for batch in loader:
            count += 1
            if count % 256 == 0 and time.perf_counter() - start >= seconds:
                break
    elapsed = time.perf_counter() - start
    cpu_elapsed = time.process_time() - cpu_start
    assert batch.x.shape == (batch_size, 12, n, 2)
    mb = 1024.0**2
    return CaseResult(
        case=case, steps=t, nodes=n, raw_mb=raw / mb, generate_s=generate_s, setup_s=setup_s,
        peak_extra_mb=peak_extra / mb, peak_extra_ratio=peak_extra / raw, tracemalloc_peak_mb=trace_peak / mb,
        inputs_mb=(prep.train.inputs.numel() + (0 if prep.train.step_features is None else prep.train.step_features.numel())) * 4 / mb,
        batches_per_s=count / elapsed,
        batches_per_cpu_s=count / cpu_elapsed, load_average=os.getloadavg()[0], batch_size=batch_size,
        batches_timed=count, windows_train=len(prep.train),
    )


def run_case(case: str, *, seconds: float = 3.0, batch_size: int = 64, seed: int = 0) -> CaseResult:
    """Generate the series here, then measure it in a fresh subprocess."""
    import numpy as np

    from stgkd.data.synthetic import generate

    steps, nodes = CASES[case]
    start = time.perf_counter()
    data, _ = generate(num_nodes=nodes, num_steps=steps, seed=seed)
    generate_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{case}.npy")
        np.save(path, data.values)
        np.save(path.replace(".npy", "-adj.npy"), data.adj)
        del data
        cmd = [sys.executable, "-m", "benchmarks.data_pipeline", "--worker", path, "--case", case,
               "--generate-s", str(generate_s), "--seconds", str(seconds), "--batch-size", str(batch_size)]
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker for {case} failed:\n{proc.stderr}")
    from benchmarks.idle import busy_now

    result = CaseResult(**json.loads(proc.stdout.strip().splitlines()[-1]))
    result.busy = result.busy or busy_now()
    return result


def machine() -> dict[str, str]:
    model = platform.processor() or "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import numpy
    import torch

    return {"cpu": model, "cores": str(os.cpu_count()), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": numpy.__version__, "os": platform.platform()}


def to_markdown(results: list[CaseResult], command: str, info: dict[str, str], when: str) -> str:
    lines = [
        "# Data pipeline benchmark (CPU)",
        "",
        f"- date: {when}",
        f"- command: `{command}`",
        f"- machine: {info['cpu']}, {info['cores']} cores; Python {info['python']}, torch {info['torch']}, "
        f"numpy {info['numpy']}; {info['os']}",
        "- series: `stgkd.data.synthetic.generate(num_nodes=N, num_steps=T, seed=0)`; "
        "`prepare(data)` with 12 in / 12 out steps and time of day (2 input channels); "
        "one torch thread; each case in a fresh subprocess.",
        f"- goals: peak extra memory of `prepare` <= {GOAL_MEMORY_RATIO:g} x the raw T x N float32 array; "
        f">= {GOAL_BATCHES_PER_S:g} batches of 64 per second (METR-LA size).",
        "",
        "| case | T x N | raw MB | generate s | prepare s | peak extra MB (x raw) | tracemalloc peak MB "
        "| inputs tensor MB | batches/s wall (B=64) | batches per CPU-s | load avg |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r.case} | {r.steps} x {r.nodes} | {r.raw_mb:.1f} | {r.generate_s:.2f} | {r.setup_s:.3f} | "
            f"{r.peak_extra_mb:.1f} ({r.peak_extra_ratio:.2f}x) | {r.tracemalloc_peak_mb:.1f} | {r.inputs_mb:.1f} | "
            + (f"{BUSY} | {BUSY} | {r.load_average:.1f} |" if r.busy else
               f"{r.batches_per_s:,.0f} | {r.batches_per_cpu_s:,.0f} | {r.load_average:.1f} |")
        )
    lines += [
        "",
        "The series is held once: the scaled values (T x N float32, 1 x the raw array) and the time of day",
        "per step (T floats, shared by all sensors and broadcast per batch); targets are a view of the raw",
        "array (no copy) and scaling runs in chunks of about 256k readings, so the peak extra memory is one",
        "copy of the array plus a few MB of temporaries. Wall-clock rates depend on what else the machine",
        "runs (load average column); batches per CPU-second are the per-core figure.",
        "",
        "```json",
        json.dumps([asdict(r) for r in results], indent=1),
        "```",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.data_pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent serving batches per case")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None, help="folder for data_pipeline-cpu-<date>.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--generate-s", type=float, default=0.0, help=argparse.SUPPRESS)
    add_allow_busy(parser)
    args = parser.parse_args(argv)
    if args.worker:
        result = worker(args.worker, args.case, args.generate_s, args.seconds, args.batch_size)
        print(json.dumps(asdict(result)))
        return 0

    if refuse_busy("benchmarks.data_pipeline", args.allow_busy):
        return EXIT_BUSY
    results = []
    for case in args.cases:
        r = run_case(case, seconds=args.seconds, batch_size=args.batch_size)
        results.append(r)
        print(f"{case:8s} {r.steps}x{r.nodes}: generate {r.generate_s:.2f}s, prepare {r.setup_s:.3f}s, "
              f"peak extra {r.peak_extra_mb:.1f} MB = {r.peak_extra_ratio:.2f}x raw ({r.raw_mb:.1f} MB), "
              f"{r.batches_per_s:,.0f} batches/s ({r.batches_per_cpu_s:,.0f} per CPU-s, load {r.load_average:.1f})")
    if args.out is not None:
        when = datetime.now(timezone.utc)
        command = "python -m benchmarks.data_pipeline " + " ".join(argv if argv is not None else sys.argv[1:])
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"data_pipeline-cpu-{when:%Y-%m-%d}.md"
        path.write_text(to_markdown(results, command.strip(), machine(), when.strftime("%Y-%m-%d %H:%M UTC")))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
