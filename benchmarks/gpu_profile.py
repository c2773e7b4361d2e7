"""The ``profile`` part of ``python -m benchmarks.gpu``: where the default student's and Graph WaveNet's CUDA
forward time goes, at batch 1 and 64, eager, as a CUDA graph and compiled (:mod:`benchmarks.profile`).

Each model is profiled by ``python -m benchmarks.profile`` in its own child process (a failed capture or
compilation poisons only that process), the default student first; the child writes one report per batch,
and the part's record gathers the reports that were written, so a child stopped at its time keeps the
batches it finished. The default student and teacher are the library's (:func:`default_student`,
:func:`default_teacher`): :data:`stgkd.nn.DEFAULT_STUDENT` and :data:`stgkd.nn.DEFAULT_TEACHER`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.budget import Deadline, OutOfTime, wait_or_stop

if TYPE_CHECKING:
    from benchmarks.gpu_parts import Context

__all__ = ["default_student", "default_teacher", "part_profile", "profile_lineup", "summary",
           "PROFILE_WIDTH", "PROFILE_BATCHES", "PROFILE_MODES"]

#: the default student's width in the profile (the width the issue's goals are stated at)
PROFILE_WIDTH = 32
PROFILE_BATCHES = (1, 64)
PROFILE_MODES = ("eager", "cuda-graph", "compile")
#: the smoke run: toy sizes, no compile (its CPU smoke is tests/benchmarks/test_profile.py's)
SMOKE_PROFILE = {"width": 4, "batches": (1, 2), "nodes": 6, "modes": ("eager", "cuda-graph")}
#: the student's share of the part's time (compiling Graph WaveNet takes longer, but the student comes first)
STUDENT_SHARE = 0.5
#: seconds between SIGTERM and SIGKILL for a profile child past its time
CHILD_TERM_WAIT_S = 5.0


def default_student() -> str:
    """The default student (:data:`stgkd.nn.DEFAULT_STUDENT`, ``stgkd distill``'s)."""
    from stgkd.nn.registry import DEFAULT_STUDENT

    return DEFAULT_STUDENT


def default_teacher() -> str:
    """The default teacher (:data:`stgkd.nn.DEFAULT_TEACHER`, ``stgkd train``'s)."""
    from stgkd.nn.registry import DEFAULT_TEACHER

    return DEFAULT_TEACHER


def _profile_argv(ctx: "Context", model: str, out: Path) -> list[str]:
    if ctx.smoke:
        s = SMOKE_PROFILE
        return ["--model", model, "--width", str(s["width"]), "--batch", *map(str, s["batches"]), "--nodes",
                str(s["nodes"]), "--device", ctx.device, "--modes", *s["modes"], "--warmup", "1", "--iters", "2",
                "--threads", "1", "--top", "5", "--out", str(out)]
    return ["--model", model, "--width", str(PROFILE_WIDTH), "--batch", *map(str, PROFILE_BATCHES), "--nodes", "207",
            "--device", ctx.device, "--modes", *PROFILE_MODES, "--warmup", "10", "--iters", "50", "--top", "12",
            "--out", str(out)]


def _run_child(argv: list[str], seconds: float, log) -> dict[str, Any]:
    """``python -m benchmarks.profile ARGV`` in its own process group, stopped (SIGTERM, then SIGKILL) after
    ``seconds``; how it ended."""
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.profile", *argv],
                            cwd=Path(__file__).resolve().parents[1],
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, start_new_session=True)
    ended = "exited"
    if wait_or_stop(proc, seconds, term_wait=CHILD_TERM_WAIT_S) != "exited":
        ended = f"stopped at its time ({seconds:.0f} s)"
        log(f"profile: {ended}")
    return {"exit_code": proc.returncode, "ended": ended}


def _batch_of(path: Path) -> int:
    """The batch of a report file ``profile-...-b<batch>.json``."""
    return int(path.stem.rsplit("-b", 1)[1])


def part_profile(ctx: "Context", deadline: Deadline) -> dict[str, Any]:
    """Profile the default student (width 32) and the default teacher at batch 1 and 64 in eager, CUDA-graph
    and compile modes, each model in its own process; the record holds every report written."""
    student, teacher = default_student(), default_teacher()
    models = [student, teacher]
    runs: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    artifacts: dict[str, str] = {}
    reached = None
    for i, model in enumerate(models):
        out = ctx.work / "profile" / model
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("profile-*"):  # a kept --workdir: only this run's reports count
            old.unlink()
        argv = _profile_argv(ctx, model, out)
        what = f"profile of {model}"
        try:
            deadline.check(what)
        except OutOfTime:
            reached = what
            break
        left = deadline.remaining()
        seconds = left * STUDENT_SHARE if i == 0 and deadline.end is not None else left
        if seconds == float("inf"):
            seconds = 3600.0
        ctx.log(f"profile: python -m benchmarks.profile {' '.join(argv)} (at most {seconds:.0f} s)")
        try:
            outcome = _run_child(argv, seconds, ctx.log)
        except OutOfTime as exc:  # the part was stopped from outside: keep what the child wrote
            outcome, reached = {"exit_code": None, "ended": "stopped with the part"}, exc.what
        paths = sorted(out.glob("profile-*.json"), key=_batch_of)
        written = [json.loads(p.read_text()) for p in paths]
        reports += written
        artifacts.update({f"{model}-b{_batch_of(p)}.md": str(p.with_suffix(".md")) for p in paths})
        runs.append({"model": model, "argv": argv, **outcome, "batches": [r["conditions"]["batch"] for r in written]})
        if reached:
            break
    width = SMOKE_PROFILE["width"] if ctx.smoke else PROFILE_WIDTH
    notes = [f"Default student: {student} (stgkd distill's), width {width}; default teacher: {teacher} (stgkd "
             "train's); untrained weights on a seeded random graph."]
    if not ctx.cuda:
        notes.append("CUDA graphs skipped: no CUDA device; CPU figures, labelled cpu.")
    if ctx.smoke:
        notes.append("Smoke run: compile mode left out (its CPU smoke is tests/benchmarks/test_profile.py).")
    record: dict[str, Any] = {"suite": "profile", "title": "Where the forward's time goes (torch.profiler)",
                              "models": models, "runs": runs, "summary": summary(reports), "reports": reports,
                              "reached": reached, "notes": notes, "_artifacts": artifacts}
    failed = [r for r in runs if r["exit_code"] != 0]
    wanted = len(SMOKE_PROFILE["batches"] if ctx.smoke else PROFILE_BATCHES)
    short = [r for r in runs if len(r["batches"]) < wanted]
    if failed and not reached:
        record["reached"] = "; ".join(f"{r['model']}: {r['ended']} (exit code {r['exit_code']}), batches "
                                      f"{r['batches'] or 'none'} written" for r in failed)
    elif short and not reached:
        record["reached"] = f"{short[0]['model']}: only batches {short[0]['batches']} written"
    return record


def summary(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, batch, mode) of the reports: wall time, kernels, device busy time, launch calls and
    the max abs difference to eager (or why the mode has no figures)."""
    rows = []
    for report in reports:
        c = report["conditions"]
        for m in report["modes"]:
            row: dict[str, Any] = {"model": c["model"], "width": c["width"], "batch": c["batch"], "mode": m["mode"],
                                   "device_kind": c["device_kind"]}
            if "skipped" in m or "error" in m:
                row["skipped" if "skipped" in m else "error"] = m.get("skipped") or m.get("error")
            else:
                row.update({k: m[k] for k in ("wall_ms_per_forward", "kernels_per_forward",
                                              "device_busy_us_per_forward", "launch_calls_per_forward")})
                f = m.get("faithfulness")
                row["max_abs_diff_to_eager"] = None if f is None else f["max_abs_diff"]
                row["within_1e-4"] = None if f is None else f["within_atol"]
                if "compile_s" in m:
                    row["compile_s"] = m["compile_s"]
            rows.append(row)
    return rows


def profile_lineup(smoke: bool) -> str:
    width = SMOKE_PROFILE["width"] if smoke else PROFILE_WIDTH
    batches = SMOKE_PROFILE["batches"] if smoke else PROFILE_BATCHES
    modes = SMOKE_PROFILE["modes"] if smoke else PROFILE_MODES
    return (f"{default_student()} w{width} (the default student), then {default_teacher()} (the default teacher), "
            f"each in its own process; batch {' and '.join(map(str, batches))}; {', '.join(modes)} "
            "(compile: inductor, reduce-overhead on CUDA); kernels, device time, launches, top kernels, max abs "
            "diff to eager")
