"""Time README's first command ("Set everything up and run the whole path") on a fresh clone.

The command is read from README.md (the first ``bash`` block under "Two commands" that ends in
``stgkd demo``) and run in a ``git clone`` of HEAD, as a newcomer would: its install part with pip's cache
off, then the demo (unless ``--install-only``), each part timed with the load average before and after it.
Every demo and test run gets empty inductor and stgkd program caches, as on a new machine.

    python -m benchmarks.fresh_clone                     # install + demo, as the README says
    python -m benchmarks.fresh_clone --seeds 0 1 2       # ... then the demo again with --seed 1 and --seed 2
    python -m benchmarks.fresh_clone --tests             # ... then README's test command, each pytest step timed
    python -m benchmarks.fresh_clone --install-only      # the install alone

The package indexes are whatever pip is configured with on this machine (``pip config list`` is
recorded): a mirror close by makes the install faster than one from the internet.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: the demo's promise: minutes on 2 cores, the install included
PROMISE_MINUTES = 9.0
#: the test command's promise: minutes on 2 cores with cold caches, the install not included (its first pytest
#: step; the compile checks, `pytest -m compile`, are a step of their own)
TESTS_PROMISE_MINUTES = 6.0
DEMO_TAIL = " && .venv/bin/stgkd demo"


def _commands(readme: Path) -> list[str]:
    """The ``bash`` blocks under README's "Two commands" heading, each stripped."""
    text = readme.read_text()
    start = text.find("## Two commands")
    if start < 0:
        raise SystemExit(f"{readme}: no '## Two commands' section")
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text[start:], flags=re.S)]


def readme_command(readme: Path) -> str:
    """The first one-line ``bash`` command under README's "Two commands" heading that runs the demo."""
    for line in _commands(readme):
        if line.endswith(DEMO_TAIL.removeprefix(" && ")):
            return line
    raise SystemExit(f"{readme}: no bash block under 'Two commands' ends in '.venv/bin/stgkd demo'")


def readme_test_steps(readme: Path, install: str) -> list[str]:
    """The pytest steps of README's test command, with the install part (the same as the demo's) taken off."""
    for line in _commands(readme):
        if "pytest" in line and line.startswith(install + " && "):
            return line[len(install) + 4:].split(" && ")
    raise SystemExit(f"{readme}: no bash block under 'Two commands' installs as the demo's does and runs pytest")


def split_command(command: str) -> tuple[str, str]:
    """(install part, demo part) of README's command."""
    if not command.endswith(DEMO_TAIL):
        raise SystemExit(f"README's command does not end in {DEMO_TAIL.strip()!r}: {command}")
    return command[: -len(DEMO_TAIL)], DEMO_TAIL.removeprefix(" && ")


#: lines of a failed step's output kept in the record (its log is in a temporary folder, removed afterwards)
FAILED_TAIL_LINES = 40


def timed(command: str, cwd: Path, env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run ``command`` in a shell in ``cwd`` (output to ``log``): exit status, wall seconds, load before/after, and
    for a step that failed the last lines of its output (``output_tail``) and pytest's failure lines (``failed``)."""
    from stgkd.latency import load_average

    before = load_average()
    t0 = time.perf_counter()
    with open(log, "w") as out:
        rc = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    step = {"command": command, "rc": rc, "wall_seconds": round(time.perf_counter() - t0, 1),
            "load_average_before": before, "load_average_after": load_average(), "log": str(log)}
    if rc != 0:
        lines = log.read_text(errors="replace").splitlines()
        step["failed"] = [line for line in lines if line.startswith(("FAILED ", "ERROR "))]
        step["output_tail"] = lines[-FAILED_TAIL_LINES:]
    return step


def cold_cache(env: dict[str, str], folder: Path) -> dict[str, str]:
    """``env`` with an empty inductor cache and stgkd program cache of its own in ``folder``: whatever a step
    compiles, it compiles cold, as on a new machine."""
    folder.mkdir(parents=True, exist_ok=False)
    return {**env, "TORCHINDUCTOR_CACHE_DIR": str(folder), "STGKD_CACHE_DIR": str(folder)}


def demo_outcome(summary: Path) -> dict[str, Any]:
    """What the demo concluded, from its ``summary.json``: its gain line, its verdicts, and how busy other
    work kept the machine as its timing began (``{}`` when the demo wrote none)."""
    if not summary.is_file():
        return {}
    data = json.loads(summary.read_text())
    gain = data.get("gain") or {}
    return {"gain_line": gain.get("line"), "verdicts": gain.get("verdicts"), "speedup_b1": gain.get("speedup_b1"),
            "latency_b1_ms": gain.get("latency_b1_ms"),
            "speedup_b1_eager": (data.get("latency") or {}).get("speedup_b1_eager"),
            "others_busy_cores": (data.get("latency") or {}).get("others_busy_cores")}


def _parts(report: dict[str, Any]) -> list[str]:
    """The install and demo parts of a report, in order."""
    return [name for name in report if name == "install" or name.startswith("demo")]


def render(report: dict[str, Any]) -> str:
    from benchmarks.table.records import table

    lines = ["# README's first command on a fresh clone: install and demo, timed", "",
             f"- date: {report['date']}", f"- command: `{report['command']}`", f"- machine: {report['machine']}",
             f"- clone: `git clone` of {report['commit']}",
             f"- pip configuration: `{report['pip_config'] or 'none'}` (pip's cache off)", ""]
    parts = [(name, report[name]) for name in _parts(report)]
    parts += [(f"tests {j + 1}", step) for j, step in enumerate(report.get("tests", []))]
    lines += table(["part", "command", "exit", "wall s", "load before", "load after"], (
        [name, f"`{p['command']}`", p["rc"], f"{p['wall_seconds']:.0f}", p["load_average_before"],
         p["load_average_after"]] for name, p in parts))
    total = report.get("total_minutes")
    if total is not None:
        verdict = "yes" if report["within_promise"] else "**no**"
        lines += ["", f"Install and demo together: **{total:.1f} min** (promise: ≤ {PROMISE_MINUTES:g} min on 2 cores, "
                  f"the install included): {verdict}."]
    if "tests_within_promise" in report:
        first = report["tests"][0]
        lines += ["", f"README's test command, its first step ({first['command']}) with cold caches: "
                  f"**{first['wall_seconds'] / 60:.1f} min** (promise: ≤ {TESTS_PROMISE_MINUTES:g} min): "
                  f"{'yes' if report['tests_within_promise'] else '**no**'}."]
    for name, step in parts:
        if step["rc"] != 0:
            lines += ["", f"**{name} failed** (exit {step['rc']})"
                      + (": " + "; ".join(f"`{f}`" for f in step["failed"]) if step.get("failed") else "")
                      + f"; its last {len(step.get('output_tail', []))} lines are in the JSON below (`output_tail`)."]
    for name, demo in [(n, report[n]) for n in report if n.startswith("demo")]:
        if demo.get("gain_line"):
            held = all(v is True for v in (demo.get("verdicts") or {}).values())
            lines += ["", f"{name} (seed {demo.get('seed', 0)}): {demo['gain_line']}.", "",
                      f"Its verdicts {demo.get('verdicts')}: {'every one holds' if held else '**not every one holds**'}."]
    lines += ["", "```json", json.dumps(report, indent=1), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install-only", action="store_true", help="time the install alone, not the demo")
    parser.add_argument("--workdir", type=Path, default=None, help="where to clone (default: a temporary folder)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="demo seeds: the first runs README's command as it is (seed 0, the default), the others "
                             "`stgkd demo --seed S --out runs/demo-seedS` (default: 0)")
    parser.add_argument("--tests", action="store_true", help="after the demos, time README's test command's steps")
    from benchmarks.record import add_record_args, environment, log, record_stem, write_record

    args = add_record_args(parser).parse_args(argv)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    pip_config = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                                text=True).stdout.strip().replace("\n", "; ")
    env_info = environment("cpu")
    stamp = dt.datetime.now(dt.timezone.utc)
    report: dict[str, Any] = {
        "date": stamp.isoformat(timespec="minutes"),
        "command": "python -m benchmarks.fresh_clone " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "machine": f"cpu: {env_info['device_name']}, {os.cpu_count()} CPUs, Python {env_info['python']}",
        "commit": commit, "pip_config": pip_config,
        "inherited_environment": {k: v for k, v in os.environ.items()
                                  if k.startswith(("OMP_", "MKL_", "STGKD_", "PIP_", "CUDA_VISIBLE"))},
    }
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")} | {"PIP_NO_CACHE_DIR": "1"}
    with tempfile.TemporaryDirectory(prefix="stgkd-fresh-") as tmp:
        root = args.workdir or Path(tmp)
        clone = root / "stgkd"
        if clone.exists():
            raise SystemExit(f"--workdir {root}: {clone} exists; give an empty folder")
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
        command = readme_command(clone / "README.md")  # the README of the commit that is installed
        install, demo = split_command(command)
        report["readme_command"] = command
        log(f"install: {install}")
        report["install"] = timed(install, clone, env, root / "install.log")
        if report["install"]["rc"] != 0:
            print((root / "install.log").read_text()[-3000:], file=sys.stderr)
        elif not args.install_only:
            for i, seed in enumerate(args.seeds):
                part = "demo" if i == 0 else f"demo-seed{seed}"
                out = f"runs/{part}"  # the first as README's command writes it, the others beside it
                command = f"{demo} --seed {seed} --out {out}" if i else demo + (f" --seed {seed}" if seed else "")
                log(f"{part}: {command}")
                report[part] = timed(command, clone, cold_cache(env, root / f"inductor-{part}"), root / f"{part}.log")
                report[part].update(seed=seed, **demo_outcome(clone / out / "summary.json"))
            total = (report["install"]["wall_seconds"] + report["demo"]["wall_seconds"]) / 60
            report["total_minutes"] = round(total, 2)
            report["within_promise"] = report["demo"]["rc"] == 0 and total <= PROMISE_MINUTES
            if args.tests:
                report["tests"] = []
                for j, step in enumerate(readme_test_steps(clone / "README.md", install)):
                    log(f"tests: {step}")
                    report["tests"].append(timed(step, clone, cold_cache(env, root / f"inductor-tests-{j}"),
                                                 root / f"tests-{j}.log"))
                first = report["tests"][0]
                report["tests_within_promise"] = first["rc"] == 0 and first["wall_seconds"] / 60 <= TESTS_PROMISE_MINUTES
        for part in _parts(report):
            report[part]["log"] = (str(root / f"{part}.log") if args.workdir
                                   else f"{part}.log (in a temporary folder, not kept)")
    text = render(report)
    print(text.split("```json")[0])
    write_record(record_stem(args, "fresh-clone-cpu", f"{stamp:%Y-%m-%d}"), report, text)
    parts = [report[p] for p in _parts(report)] + report.get("tests", [])
    return 0 if all(p["rc"] == 0 for p in parts) else 1


if __name__ == "__main__":
    sys.exit(main())
