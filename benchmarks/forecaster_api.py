"""The deployment API as a planning service meets it: load, first forecast, steady forecasts.

Each run is a new Python process (one thread, nothing else running) that imports stgkd, calls
``Forecaster.load(FILE)``, forecasts once from a DataFrame, then times steady forecasts from a DataFrame of
exactly ``input_steps`` rows, from a rolling buffer a day longer, from an array, and the loaded program
itself on the same inputs (``fc.program``: what ``stgkd latency FILE`` times) and ``predict(DataFrame)``
around a program that returns at once (the API's own cost), in interleaved rounds.
Runs alternate between cold caches (a new, empty ``TORCHINDUCTOR_CACHE_DIR`` and stgkd program cache
``STGKD_CACHE_DIR``: a new machine or a new torch, the file's first load there) and warm ones (the
directories the cold run just filled: a service restarted).

    python -m benchmarks.forecaster_api runs/st/student.pt2            # 2 cold + 2 warm processes
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: what the API promises (issue goals): load + first forecast on a warm cache, and predict(DataFrame) over the
#: program's own time at batch 1
GOALS = {"load_first_warm_s": 2.0, "frame_over_program": 1.5}


def child(path: str, iters: int, rounds: int, threads: int = 1) -> dict[str, Any]:
    """One process's figures (``import_s`` counts from this function's start, before torch is imported)."""
    t0 = time.perf_counter()
    import numpy as np
    import pandas as pd
    import torch

    from stgkd import Forecaster

    torch.set_num_threads(threads)
    t1 = time.perf_counter()
    fc = Forecaster.load(path)
    t2 = time.perf_counter()
    rng = np.random.default_rng(0)
    index = pd.date_range("2012-03-05 00:00", periods=fc.input_steps + 288, freq=f"{fc.interval_minutes}min")
    buffer = pd.DataFrame(rng.uniform(20, 70, (len(index), fc.num_nodes)), index=index, columns=fc.sensor_ids)
    frame = buffer.iloc[-fc.input_steps:]
    fc.predict(frame)
    t3 = time.perf_counter()
    array = frame.to_numpy(np.float32)
    values = torch.from_numpy(array[None].copy())
    stamps = torch.from_numpy(frame.index.as_unit("s").asi8[None].copy())  # seconds since the epoch
    with torch.inference_mode():  # the program is timed on the very inputs predict hands it
        gap = float(np.abs(fc.program(values, stamps).numpy()[0] - fc.predict(frame).to_numpy()).max())
    if gap > 1e-4:
        raise SystemExit(f"{path}: the program and predict(frame) differ by {gap:.3g} on the same window")
    with torch.inference_mode():
        canned = fc.program(values, stamps)
    # the same API around a program that returns at once: what predict costs beside the model
    around = Forecaster(lambda v, s: canned.clone(), fc.metadata)
    calls = {"program": lambda: fc.program(values, stamps), "frame": lambda: fc.predict(frame),
             "buffer": lambda: fc.predict(buffer), "array": lambda: fc.predict(array, start=frame.index[0]),
             "frame_no_model": lambda: around.predict(frame)}
    samples: dict[str, list[float]] = {k: [] for k in calls}
    with torch.inference_mode():
        for _ in range(rounds):
            for name, call in calls.items():
                for _ in range(max(1, iters // rounds)):
                    a = time.perf_counter()
                    call()
                    samples[name].append((time.perf_counter() - a) * 1e3)
    ms = {k: statistics.median(v) for k, v in samples.items()}
    return {"backend": fc.backend, "input_steps": fc.input_steps, "sensors": fc.num_nodes,
            "import_s": t1 - t0, "load_s": t2 - t1, "first_forecast_ms": (t3 - t2) * 1e3, "load_first_s": t3 - t1,
            "median_ms": ms, "over_program": {k: ms[k] / ms["program"] for k in ("frame", "buffer", "array")}}


def run_child(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """One measuring process's figures (its last line of output, JSON)."""
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def render(report: dict[str, Any]) -> str:
    from benchmarks.table.records import table

    g = report["goals"]
    lines = ["# The deployment API: load, first forecast, steady forecasts", "",
             f"- date: {report['date']}", f"- command: `{report['command']}`", f"- machine: {report['machine']}",
             f"- file: `{report['file']}` ({report['runs'][0]['sensors']} sensors, {report['runs'][0]['input_steps']} "
             f"input steps, backend {report['runs'][0]['backend']})", "",
             "One process per row, one thread, the runs one after another on an otherwise idle machine (1-minute load "
             "before each). *load + first* is `Forecaster.load` and the first `predict(DataFrame)`; import is "
             "torch + stgkd before it. Steady figures: median ms per call; *frame / program* is "
             "`predict(DataFrame)` over the loaded program's own time on the same inputs; *around the model* is "
             "`predict(DataFrame)` with a program that returns at once (what the API itself costs).", ""] + table(["cache", "load before", "import s", "load s", "first forecast ms", "load + first s",
                          "program ms", "predict(frame) ms", "predict(buffer +1 day) ms", "predict(array) ms",
                          "around the model ms", "frame / program"], (
        [r["cache"], r["load_before"], f"{r['import_s']:.2f}", f"{r['load_s']:.2f}", f"{r['first_forecast_ms']:.1f}",
         f"{r['load_first_s']:.2f}"] + [f"{r['median_ms'][k]:.3f}" for k in ("program", "frame", "buffer", "array")]
        + [_ms(r["median_ms"].get("frame_no_model")), f"{r['over_program']['frame']:.2f}x"] for r in report["runs"]))
    lines += ["", f"Goals: load + first forecast on a warm cache ≤ {GOALS['load_first_warm_s']:g} s: "
              f"{'met' if g['load_first_warm_met'] else 'not met'} ({g['load_first_warm_s']}); predict(DataFrame) within "
              f"{GOALS['frame_over_program']:g}x of the program: {'met' if g['frame_over_program_met'] else 'not met'} "
              f"({g['frame_over_program']}).", "", "```json", json.dumps(report, indent=1), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.record import add_record_args  # light: the child's import_s starts before torch

    parser = argparse.ArgumentParser(prog="python -m benchmarks.forecaster_api", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="an exported student (stgkd export)")
    parser.add_argument("--pairs", type=int, default=2, help="cold + warm process pairs (default: 2)")
    parser.add_argument("--iters", type=int, default=300, help="timed calls of each kind per process (default: 300)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds the calls are split into (default: 5)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default: 1)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = add_record_args(parser, allow_busy=True).parse_args(argv)
    if args.child:
        print(json.dumps(child(args.file, args.iters, args.rounds, args.threads)))
        return 0
    from benchmarks.idle import refuse_busy
    from benchmarks.record import record_stem, write_record

    if refuse_busy(parser.prog, args.allow_busy):
        return 2

    from benchmarks.record import environment
    from stgkd.latency import load_average

    env = environment("cpu")
    stamp = dt.datetime.now(dt.timezone.utc)
    runs: list[dict[str, Any]] = []
    for _ in range(args.pairs):
        with tempfile.TemporaryDirectory(prefix="stgkd-caches-") as cache:
            for state in ("cold", "warm"):
                env_vars = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "STGKD_CACHE_DIR": cache,
                            "OMP_NUM_THREADS": str(args.threads)}
                cmd = [sys.executable, "-m", "benchmarks.forecaster_api", str(args.file), "--child", "--threads",
                       str(args.threads), "--iters", str(args.iters), "--rounds", str(args.rounds)]
                before = load_average()
                runs.append({"cache": state, "load_before": before[0] if before else None,
                             **run_child(cmd, env_vars)})
                r = runs[-1]
                print(f"{state}: load + first {r['load_first_s']:.2f} s, frame {r['median_ms']['frame']:.3f} ms, "
                      f"program {r['median_ms']['program']:.3f} ms", flush=True)
    warm = [r["load_first_s"] for r in runs if r["cache"] == "warm"]
    ratios = [r["over_program"]["frame"] for r in runs]
    report = {"date": stamp.isoformat(timespec="minutes"),
              "command": "python -m benchmarks.forecaster_api " + shlex.join(argv if argv is not None else sys.argv[1:]),
              "machine": f"cpu: {env['device_name']}, {os.cpu_count()} CPUs, torch {env['torch']}, {args.threads} thread(s)",
              "file": str(args.file), "runs": runs,
              "goals": {"load_first_warm_s": f"{min(warm):.2f}-{max(warm):.2f} s",
                        "load_first_warm_met": max(warm) <= GOALS["load_first_warm_s"],
                        "frame_over_program": f"{min(ratios):.2f}-{max(ratios):.2f}x",
                        "frame_over_program_met": max(ratios) <= GOALS["frame_over_program"]}}
    write_record(record_stem(args, "forecaster-api-cpu", f"{stamp:%Y-%m-%d}"), report, render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
