"""``python -m benchmarks.gpu``: every GPU figure of the study from one command, each part in its own
process under a time budget (the parts: :data:`benchmarks.gpu_parts.PARTS`; the plan: ``benchmarks/README.md``).

A crash, a CUDA error or an out-of-memory in one part loses nothing of another: the parent never touches the
GPU, writes each part's record as soon as the part ends (the part's own, or one saying how it died) and
renders RESULTS.md once, at the end. The budgets form one schedule (:func:`plan`) that fits :data:`PLAN_LIMIT_S`.

    python -m benchmarks.gpu --plan                         # the parts, models and budgets; runs nothing
    python -m benchmarks.gpu --out "$OUT"                   # the GPU machine
    python -m benchmarks.gpu --smoke --out /tmp/gpu-smoke   # anywhere, a few minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

from benchmarks.budget import Deadline, OutOfTime, last_line, run_child
from benchmarks.gpu_parts import PARTS, Context, Part, kept
from benchmarks.record import environment, log, write_json
from benchmarks.record import one_line as _one_line
from benchmarks.run import RESULTS_DIR, RESULTS_MD, SCHEMA

__all__ = ["PARTS", "Part", "plan", "format_plan", "run_part", "build_parser", "main"]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: the whole run, install and rendering included: 8 of the 15 minutes a GPU is lent for, so that after a
#: machine start a rerun of the parts that failed (``--parts``) still fits
PLAN_LIMIT_S = 480.0
#: installing the wheels and the parent's imports (about 5 s)
INSTALL_S = 10.0
#: starting a part's process, on top of its budget: 11-16 s on the H200 (``results/gpu-run-cuda-2026-12-04-1.log``)
STARTUP_S = 15.0
#: rendering RESULTS.md once at the end
RENDER_S = 10.0
#: seconds between SIGTERM and SIGKILL for a part past its deadline and grace
TERM_WAIT_S = 10.0
#: the lines of a part's standard error kept in its record
STDERR_TAIL_LINES = 40
#: generous budgets of --smoke (toy sizes finish in seconds; a budget only guards against a hang)
SMOKE_BUDGET_S = 120.0
#: exit code of a part process that wrote its record with an error
EXIT_PART_FAILED = 1


# ============================================================================ the plan


def _budgets(args: argparse.Namespace, parts: list[Part]) -> list[float]:
    given = [getattr(args, f"budget_{part.name.replace('-', '_')}", None) for part in parts]
    return [float(g) if g is not None else SMOKE_BUDGET_S if args.smoke else p.budget_s for g, p in zip(given, parts)]


def plan(parts: list[Part], budgets: list[float], *, smoke: bool = False) -> dict[str, Any]:
    """When each part must end (its start allowance and budget after the part before), and the whole run's worst
    case against :data:`PLAN_LIMIT_S`: a part that overruns takes its time from the next, so only the last
    part's grace adds to the total. A smoke run has no start allowance: a budget it is given is the part's
    whole time."""
    startup_s = 0.0 if smoke else STARTUP_S
    rows, end = [], 0.0
    for index, (part, budget) in enumerate(zip(parts, budgets), start=1):
        end += startup_s + budget
        rows.append({"index": index, "part": part.name, "budget_s": budget, "ends_s": end, "grace_s": part.grace_s})
    grace = parts[-1].grace_s if parts else 0.0
    total = INSTALL_S + end + grace + TERM_WAIT_S + RENDER_S
    return {"rows": rows, "budgets_s": sum(budgets), "startup_s": startup_s * len(parts), "install_s": INSTALL_S,
            "last_grace_s": grace, "term_wait_s": TERM_WAIT_S, "render_s": RENDER_S, "total_s": total,
            "limit_s": PLAN_LIMIT_S, "fits": total <= PLAN_LIMIT_S}


def format_plan(parts: list[Part], budgets: list[float], *, smoke: bool, device: str) -> str:
    """The plan as text: one line per part, then the total against the limit."""
    p = plan(parts, budgets, smoke=smoke)
    lines = [f"python -m benchmarks.gpu: {len(parts)} part(s), {'smoke run (toy sizes)' if smoke else 'full size'} on "
             f"{device}; each part in its own process, in this order:", "",
             f"{'#':>2}  {'part':<13} {'budget s':>8} {'ends by s':>9} {'grace s':>7}  models"]
    for row, part in zip(p["rows"], parts):
        lines.append(f"{row['index']:>2}  {row['part']:<13} {row['budget_s']:>8.0f} {row['ends_s']:>9.0f} "
                     f"{row['grace_s']:>7.0f}  {part.lineup(smoke)}")
    if smoke:
        return "\n".join(lines + ["", f"budgets {p['budgets_s']:.0f} s: a smoke run's budgets only guard against a hang"])
    verdict = ("fits" if p["fits"] else f"DOES NOT FIT (over by {p['total_s'] - p['limit_s']:.0f} s)")
    lines += ["", f"budgets {p['budgets_s']:.0f} s + {len(parts)} process starts {p['startup_s']:.0f} s + install "
                  f"{p['install_s']:.0f} s + the last part's grace "
                  f"{p['last_grace_s']:.0f} s + SIGTERM wait {p['term_wait_s']:.0f} s + rendering {p['render_s']:.0f} s "
                  f"= {p['total_s']:.0f} s at most: {verdict} the {p['limit_s']:.0f} s ({p['limit_s'] / 60:.1f} min) "
                  "of a GPU run"]
    return "\n".join(lines)


# ============================================================================ a part in its own process


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _complete(record: dict[str, Any], part: Part, *, index: int, budget_s: float, started: dt.datetime, wall: float,
              error: str | None, run_id: str, command: str, smoke: bool, environment: Callable[[], dict[str, Any]]
              ) -> dict[str, Any]:
    """Fill in what every part's record carries: suite, title, schema, date, command, how the part ended."""
    record.setdefault("suite", part.suite)
    record.setdefault("title", part.title)
    record.setdefault("protocol", record["suite"])
    record.setdefault("notes", [])
    if "environment" not in record:
        record["environment"] = environment()
    reached = record.get("reached")
    completed = bool(error is None and reached is None and record.get("completed", True))
    record.update(schema=SCHEMA, date=started.strftime("%Y-%m-%d"), started=started.isoformat(timespec="seconds"),
                  wall_seconds=wall, command=command, completed=completed)
    record["run"] = {"id": run_id, "part": part.name, "index": index, "budget_s": budget_s, "wall_s": wall,
                     "completed": bool(completed), "reached": reached, "error": error, "smoke": smoke}
    return record


def run_part(part: Part, ctx: Context, deadline: Deadline, *, index: int, budget_s: float) -> dict[str, Any]:
    """Run one part (in the part's process) and return its complete record: an error is recorded, not
    raised, and a part that returns a record with an ``"error"`` keeps what it measured."""
    started, t0 = _now(), time.monotonic()
    ctx.log(f"part {index} {part.name}: budget {budget_s:g} s ({max(0.0, deadline.remaining()):.1f} s until its "
            "deadline in the schedule)")
    out: dict[str, Any] = {}

    def work() -> None:
        deadline.check(f"{part.name} (its time went to the parts before it)")
        out.update(part.run(ctx, deadline))

    reached, error = kept(work, ctx, f"part {part.name}")
    record = {"reached": reached} if reached else {"error": error} if error else out
    error = record.get("error")
    wall = time.monotonic() - t0
    record = _complete(record, part, index=index, budget_s=budget_s, started=started, wall=wall, error=error,
                       run_id=ctx.run_id, command=ctx.command, smoke=ctx.smoke,
                       environment=lambda: environment(ctx.device))
    state = ("completed" if record["completed"] else f"failed ({error})" if error
             else f"stopped before {record.get('reached')}")
    ctx.log(f"part {part.name}: {state} in {wall:.1f} s")
    return record


def _stop_from_outside(signum: int, frame: Any) -> None:
    """SIGTERM in a part's process: stop the work where it is (as a deadline would) and write the record."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise OutOfTime("the rest of the part (its process was stopped at its time limit)")


def _child(name: str, request_path: Path) -> int:
    """A part's process: run the part the request names and write its record where the request says."""
    request = json.loads(Path(request_path).read_text())
    signal.signal(signal.SIGTERM, _stop_from_outside)
    part = next(p for p in PARTS if p.name == name)
    seconds = float(request["seconds"]) - (time.time() - float(request["launched_at"]))
    ctx = Context(device=request["device"], smoke=request["smoke"],
                  week=Path(request["week"]) if request["week"] else None, work=Path(request["work"]),
                  run_id=request["run_id"], command=request["command"], log=log, handover=request["handover"])
    record = run_part(part, ctx, Deadline.after(seconds), index=request["index"], budget_s=request["budget_s"])
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the record is written whole or not at all
    if ctx.handed:
        record["_handover"] = ctx.handed
    write_json(Path(request["record"]), record)
    return EXIT_PART_FAILED if record["run"]["error"] else 0


def _part_command(part: Part, request_path: Path) -> list[str]:
    """The command line of a part's process."""
    return [sys.executable, "-m", "benchmarks.gpu", "--part", part.name, "--request", str(request_path)]


def _launch(part: Part, request: dict[str, Any], *, work: Path, seconds: float,
            log: Callable[[str], None], log_file: Path) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Run ``part`` in its own process, stopped past ``seconds`` and its grace (:func:`run_child`); its record
    (``None`` when it wrote none) and ``{"exit_code", "ended", "stderr_tail"}``."""
    stem = f"part-{request['index']}-{part.name}"
    request_path, record_path = work / f"{stem}.request.json", work / f"{stem}.record.json"
    record_path.unlink(missing_ok=True)
    request = {**request, "record": str(record_path), "seconds": seconds, "launched_at": time.time()}
    write_json(request_path, request)
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
    with open(log_file, "a", encoding="utf-8") as fh:

        def tee(line: str) -> None:  # the part's stderr: to ours, to the run's log, and its last lines kept
            tail.append(line.rstrip("\n"))
            sys.stderr.write(line)
            fh.write(line)
            fh.flush()

        # its own process group: stopping the part stops the processes it started too (capture probes)
        code, how = run_child(_part_command(part, request_path), seconds + part.grace_s, term_wait=TERM_WAIT_S,
                              cwd=REPO_ROOT, on_line=tee, stdout=None)
    ended = {"exited": "exited",
             "stopped": f"stopped from outside {part.grace_s:g} s past its deadline (SIGTERM)",
             "killed": f"killed {TERM_WAIT_S:g} s after SIGTERM ({part.grace_s:g} s past its deadline)"}[how]
    if how != "exited":
        log(f"part {part.name}: {ended}")
    outcome = {"exit_code": code, "ended": ended, "stderr_tail": "\n".join(tail)}
    record = None
    if record_path.is_file():
        try:
            record = json.loads(record_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            outcome["ended"] += f"; its record could not be read ({_one_line(exc)})"
    return record, outcome


def _dead_part_record(part: Part, outcome: dict[str, Any]) -> dict[str, Any]:
    """The record of a part whose process wrote none: how it ended and the last line it wrote."""
    last, code = last_line(outcome["stderr_tail"]), outcome["exit_code"]
    how = (outcome["ended"] if outcome["ended"] != "exited" else f"ended by exit code {code}" if code is None or code >= 0
           else f"ended by signal {signal.Signals(-code).name if -code in signal.valid_signals() else -code}")
    return {"error": f"its process {how} and wrote no record" + (f" (last line: {last})" if last else "")}


# ============================================================================ the parent


def _render(results: Path, markdowns: list[Path], log: Callable[[str], None]) -> None:
    """Regenerate each RESULTS.md from ``results`` (a rendering failure is logged: the JSON files are what
    counts; ``python -m benchmarks.run --render`` redoes it from them)."""
    from benchmarks.table.page import write_markdown

    for md in markdowns:
        try:
            write_markdown(results, md)
        except Exception as exc:
            log(f"rendering {md} failed ({_one_line(exc)}); the JSON files are intact")


def _smoke_week(folder: Path) -> Path:
    """A 6-sensor, 2-day synthetic stand-in for the METR-LA week, in the week's file layout."""
    from stgkd.cli import main as stgkd_main

    code = stgkd_main(["data", "synth", "--out", str(folder), "--nodes", "6", "--days", "2", "--seed", "0", "--force"])
    if code != 0:
        raise RuntimeError(f"stgkd data synth exited with {code}")
    (folder / "synthetic.h5").replace(folder / "metr-la-week.h5")
    return folder


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    names = [part.name for part in PARTS]
    p.add_argument("--parts", nargs="+", default=names, choices=names, metavar="PART",
                   help=f"parts to run, in the fixed order {' '.join(names)} (default: all)")
    p.add_argument("--plan", action="store_true",
                   help="print the parts, their models and budgets, and whether the plan fits; run nothing")
    p.add_argument("--out", default=None, help="also write every JSON file and RESULTS.md here (e.g. $OUT)")
    p.add_argument("--results-dir", default=None,
                   help="where the JSON files go (default: benchmarks/results; with --smoke only --out)")
    p.add_argument("--markdown", default=None,
                   help="RESULTS.md to regenerate (default: benchmarks/RESULTS.md; with --smoke OUT/RESULTS.md)")
    p.add_argument("--week", default=None, help="folder of the real METR-LA week (default: $STGKD_WEEK, else "
                   "../shared/data/metr-la-week, else .gpu/data/metr-la-week)")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"],
                   help="auto: CUDA, refusing to run full size without it (default: auto; --smoke: cpu)")
    p.add_argument("--smoke", action="store_true",
                   help="every part at toy size on the CPU, each in its own process, into --out only (what CI runs)")
    p.add_argument("--workdir", default=None, help="keep checkpoints and the study here (default: a temporary folder)")
    p.add_argument("--part", default=None, choices=names, help=argparse.SUPPRESS)  # a part's own process
    p.add_argument("--request", default=None, help=argparse.SUPPRESS)
    budgets = p.add_argument_group("time budgets (seconds; one schedule: time a part leaves goes to the next)")
    for part in PARTS:
        budgets.add_argument(f"--budget-{part.name}", type=float, default=None, metavar="S",
                             help=f"{part.title} (default: {part.budget_s:g}; --smoke: {SMOKE_BUDGET_S:g})")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the selected parts, each in its own process; 0 when every part wrote its record without an error
    (a part cut short by its budget is recorded, not an error), 1 when a part failed or died, 2 for bad
    arguments. ``--plan`` prints the plan and runs nothing."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.part:
        if not args.request:
            print("benchmarks.gpu: --part needs --request", file=sys.stderr)
            return 2
        return _child(args.part, Path(args.request))
    selected = [part for part in PARTS if part.name in args.parts]
    budgets = _budgets(args, selected)
    device = "cpu" if args.smoke and args.device == "auto" else args.device
    if args.plan:
        print(format_plan(selected, budgets, smoke=args.smoke, device="cuda" if device == "auto" else device))
        return 0
    if device != "cpu" and not torch.cuda.is_available():
        why = ("--device cuda but CUDA is not available" if device == "cuda" else "no CUDA device; run with --smoke "
               "(toy sizes on the CPU) or --device cpu (full size on the CPU, which the budgets cut short)")
        print(f"benchmarks.gpu: {why}", file=sys.stderr)
        return 2
    device = "cuda" if device == "auto" else device
    out = Path(args.out) if args.out else None
    if args.smoke and out is None and args.results_dir is None:
        out = Path(tempfile.mkdtemp(prefix="stgkd-gpu-smoke-"))
    results = Path(args.results_dir) if args.results_dir else (None if args.smoke else RESULTS_DIR)
    folders = list(dict.fromkeys(p.resolve() for p in (results, out) if p is not None))
    primary = folders[0]
    markdown = Path(args.markdown) if args.markdown else (primary / "RESULTS.md" if args.smoke else RESULTS_MD)
    markdowns = list(dict.fromkeys([markdown.resolve()] + ([out.resolve() / "RESULTS.md"] if out else [])))
    run_id = _now().strftime("%Y%m%dT%H%M%SZ")
    log_path = (out or primary) / "gpu-run.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        line = f"[{_now().strftime('%H:%M:%S')}] {msg}"
        print(line, file=sys.stderr, flush=True)
        with open(log_path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="stgkd-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    try:
        week = _smoke_week(work / "toy-week") if args.smoke else _find_week(args.week)
        command = "python -m benchmarks.gpu " + shlex.join(argv)
        log(f"benchmarks.gpu on {device} ({'smoke' if args.smoke else 'full size'}); week: {week}; "
            f"results: {', '.join(map(str, folders))}")
        schedule = plan(selected, budgets, smoke=args.smoke)
        log(f"plan: budgets {schedule['budgets_s']:.0f} s, at most {schedule['total_s']:.0f} s with install, grace and "
            f"rendering ({'fits' if schedule['fits'] else 'DOES NOT FIT'} the {PLAN_LIMIT_S:.0f} s of a GPU run)")
        tag = "-smoke" if args.smoke else ""
        handover: dict[str, Any] = {}
        t_start = time.monotonic()  # the schedule starts with the first part
        for row, part in zip(schedule["rows"], selected):
            index, budget = row["index"], row["budget_s"]
            seconds = t_start + row["ends_s"] - time.monotonic()
            t0 = time.monotonic()
            common = dict(index=index, budget_s=budget, started=_now(), run_id=run_id, command=command,
                          smoke=args.smoke, environment=lambda: {  # what the parent knows without touching the GPU
                              **environment("cpu"), "device": device, "device_name": handover.get(
                                  "device_name") or "unknown (the part's process wrote no record)"})
            if seconds <= 0:  # no process is started for a part whose time is gone
                log(f"part {index} {part.name}: no time left in the schedule; not started")
                record = _complete({"reached": f"{part.name} (its time went to the parts before it)"}, part, wall=0.0,
                                   error=None, **common)
            else:
                log(f"part {index} {part.name}: its own process, {seconds:.0f} s until its deadline")
                request = {"part": part.name, "index": index, "budget_s": budget, "device": device,
                           "smoke": args.smoke, "week": str(week) if week else None, "work": str(work),
                           "run_id": run_id, "command": command, "handover": handover}
                record, outcome = _launch(part, request, work=work, seconds=seconds, log=log, log_file=log_path)
                if record is None:
                    dead = _dead_part_record(part, outcome)
                    record = _complete(dead, part, wall=time.monotonic() - t0, error=dead["error"], **common)
                    log(f"part {part.name}: {dead['error']}")
                elif outcome["ended"] != "exited":
                    record["notes"].append(f"Its process was {outcome['ended']}; what it wrote before is kept.")
                record["run"].update(outcome)
            handed = record.pop("_handover", None) or {}
            handover.update({**handed, "capture": {**handover.get("capture", {}), **handed.get("capture", {})}})
            if part.name == "environment" and record.get("environment"):
                handover["device_name"] = record["environment"].get("device_name")
            if record["run"]["error"]:
                failed.append(part.name)
            stem = f"{record['suite']}-{device}-{record['date']}{tag}"
            artifacts = {k: Path(v) for k, v in (record.pop("_artifacts", None) or {}).items() if Path(v).is_file()}
            record["files"] = {k: f"{stem}-{k}" for k in artifacts}
            for folder in folders:
                folder.mkdir(parents=True, exist_ok=True)
                for key, src in artifacts.items():
                    shutil.copyfile(src, folder / record["files"][key])
                log(f"wrote {write_json(folder / f'{stem}.json', record)}")
        log(f"done in {time.monotonic() - t_start:.0f} s" + (f"; failed parts: {', '.join(failed)}" if failed else ""))
        return 1 if failed else 0
    finally:
        _render(primary, markdowns, log)  # once, at the end; also after a failure
        log(f"RESULTS.md: {', '.join(map(str, markdowns))}")
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def _find_week(week: str | None) -> Path | None:
    from benchmarks.suites import week_folder
    from stgkd.errors import DataError

    try:
        return week_folder(week)
    except DataError as exc:
        print(f"benchmarks.gpu: {exc}; the week's parts will record the error", file=sys.stderr)
        return None


if __name__ == "__main__":
    raise SystemExit(main())
