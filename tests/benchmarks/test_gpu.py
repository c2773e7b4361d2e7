"""``python -m benchmarks.gpu``: every part end to end at toy size on the CPU (``--smoke``), each in its own
process; a part that crashes or overruns costs no other part its record; its time budgets (a part cut
short records how far it got), the plan, and the rendering of its records."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmarks import gpu
from benchmarks.budget import Deadline, OutOfTime, TimeShares
from benchmarks.gpu_parts import Context, Part
from benchmarks.table.page import render
from stgkd.nn.registry import DEFAULT_STUDENT

SUITES = {"environment": "environment", "latency": "latency", "profile": "profile", "cuda-tests": "cuda-tests",
          "timing": "model-timing", "metr-la-week": "metr-la-week", "tuning": "tuning"}


@pytest.fixture
def one_thread(monkeypatch):
    """One torch thread here and in every part's process (they inherit the environment)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _records(folder):
    return {json.loads(p.read_text())["run"]["part"]: json.loads(p.read_text()) for p in folder.glob("*.json")}


def test_smoke_runs_every_part_and_renders_results(tmp_path, one_thread):
    from benchmarks.run import RESULTS_DIR, RESULTS_MD
    from stgkd.nn.registry import MODELS, model_names

    def ours(role=None):  # other tests register toy models in the same registry
        return {n for n in model_names(role) if MODELS.get(n).__module__.startswith(("stgkd.", "benchmarks."))}

    committed = sorted(p.name for p in RESULTS_DIR.iterdir())
    md_before = RESULTS_MD.read_bytes()
    out = tmp_path / "out"
    assert gpu.main(["--smoke", "--out", str(out), "--workdir", str(tmp_path / "work")]) == 0

    recs = _records(out)
    assert set(recs) == {p.name for p in gpu.PARTS}
    for part, rec in recs.items():
        assert rec["schema"] == "stgkd-bench/1" and rec["suite"] == SUITES[part]
        assert rec["completed"] is True and rec["run"]["completed"] and rec["run"]["error"] is None
        assert rec["run"]["smoke"] and rec["command"].startswith("python -m benchmarks.gpu --smoke")
        assert (out / f"{rec['suite']}-cpu-{rec['date']}-smoke.json").is_file()
        # each part ran in its own process, which the parent watched end
        assert rec["run"]["exit_code"] == 0 and rec["run"]["ended"] == "exited"
        assert f"part {part}: completed" in rec["run"]["stderr_tail"]
    assert [recs[p.name]["run"]["index"] for p in gpu.PARTS] == list(range(1, len(gpu.PARTS) + 1))

    # CUDA-only settings are skipped with the reason, never figures
    assert recs["environment"]["details"]["gpu"] == {"skipped": "no CUDA device"}
    lat = recs["latency"]["results"]
    graph = [r for r in lat if r.get("mode") == "cuda-graph"]
    assert graph and all(r["skipped"] == "no CUDA device" and "median_ms" not in r for r in graph)
    eager = [r for r in lat if r.get("mode") == "eager" and "median_ms" in r]
    assert {r["model"] for r in eager if r["section"] == "main"} >= {
        f"{f}-h{w}" for f in ours("student") for w in (16, 32, 64)} | {"graph-wavenet"}
    assert {r["model"] for r in lat if r["section"] == "peers"} == {
        "pgt-a3tgcn2", "pgt-tgcn2-stepped", "pgt-batched-dcrnn", "pgt-mtgnn"}
    timed = {r["model"] for r in recs["timing"]["models"] if not r["error"]}
    assert {r["model"] for r in recs["timing"]["models"]} >= ours()  # each model timed, or why it could not be
    assert ours("teacher") | ours("student") <= timed
    assert {r["dtype"] for r in recs["timing"]["models"] if not r["error"]} == {"fp32", "bf16"}
    order = recs["timing"]["order"]
    assert order[0] == "graph-wavenet" and max(map(order.index, ours("student"))) < order.index("dcrnn")
    # the profile part: the default student, then the default teacher, each profiled in its own process
    prof = recs["profile"]
    student = DEFAULT_STUDENT
    assert prof["models"] == [student, "graph-wavenet"]
    assert [(r["model"], r["exit_code"], r["batches"]) for r in prof["runs"]] == [
        (student, 0, [1, 2]), ("graph-wavenet", 0, [1, 2])]
    assert [(p["conditions"]["model"], p["conditions"]["batch"]) for p in prof["reports"]] == [
        (student, 1), (student, 2), ("graph-wavenet", 1), ("graph-wavenet", 2)]
    for report in prof["reports"]:
        eager, graph = report["modes"]
        assert eager["wall_ms_per_forward"] > 0 and graph == {"mode": "cuda-graph", "skipped": "needs a CUDA device"}
    assert (out / prof["files"][f"{student}-b1.md"]).read_text().startswith(f"# Profile: {student} width 4 at batch 1")
    # the week suite trains the default student (and the default teacher) instead of the gcn-gru reference
    labels = [m["label"] for m in recs["metr-la-week"]["models"]]
    assert labels[0] == "graph-wavenet (teacher)" and "gcn-gru h32" not in labels
    assert {f"{student} h32", f"{student} h32 + KD", "gcn-gru h32 structured + KD", "PGT TGCN"} <= set(labels)
    assert labels.index("PGT TGCN") == len(labels) - 1  # the peer after the students
    assert "reduced_by_design" not in recs["metr-la-week"]
    assert recs["metr-la-week"]["budget"]["time_budget_s"] > 0
    tuning = recs["tuning"]
    assert tuning["report"]["counts"]["total"] >= 2 and tuning["exit_code"] in (0, 1)
    assert any("no CUDA device" in n for n in tuning["notes"])
    assert tuning["calibration"]["mode"] == "eager" and tuning["calibration"]["budget_ms"] > 0
    assert tuning["calibration"]["reference"]["model"] == DEFAULT_STUDENT
    assert tuning["calibration"]["source"] == "calibrated here"  # no CUDA-graph figure of the teacher on the CPU
    assert (out / tuning["files"]["report.md"]).is_file()

    text = (out / "RESULTS.md").read_text()
    assert "## GPU run" in text and "(smoke run, toy sizes)" in text
    for rec in recs.values():
        assert f"{rec['suite']}-cpu-{rec['date']}-smoke.json" in text
    assert "skipped: no CUDA device" in text and "**Smoke run**" in text
    assert "## Tuning study against a latency budget" in text and "Against the goals" in text
    assert (out / "gpu-run.log").is_file()
    # the smoke run leaves the committed results alone
    assert sorted(p.name for p in RESULTS_DIR.iterdir()) == committed
    assert RESULTS_MD.read_bytes() == md_before


def test_parts_out_of_time_record_how_far_they_got(tmp_path, one_thread):
    out = tmp_path / "out"
    argv = ["--smoke", "--out", str(out), "--parts", "environment", "timing", "--budget-environment", "0",
            "--budget-timing", "60"]
    assert gpu.main(argv) == 0  # a part cut short is recorded, not an error
    recs = _records(out)
    env = recs["environment"]
    assert env["completed"] is False and env["run"]["reached"] == env["reached"]
    assert env["reached"].startswith("environment") and "details" not in env
    assert recs["timing"]["completed"] is True  # the next part still runs, on its own budget
    text = (out / "RESULTS.md").read_text()
    assert "**Cut short** by its time budget of 0 s" in text and "Nothing measured." in text
    assert "| 1 | environment | 0 |" in text and "| 2 | timing | 60 |" in text


class _Checks(Deadline):
    """A deadline that passes after ``n`` checks (deterministic, unlike a clock)."""

    def __init__(self, n: int) -> None:
        super().__init__(None)
        self.n = n

    def expired(self) -> bool:
        self.n -= 1
        return self.n < 0


def test_latency_collect_stops_between_settings_and_keeps_rows():
    from benchmarks import latency

    args = latency.resolve_args(latency.build_parser().parse_args(
        ["--device", "cpu", "--sections", "main", "--nodes", "6", "--batch", "1", "--modes", "eager",
         "--dtypes", "fp32", "--widths", "8", "--warmup", "1", "--iters", "1", "--no-teacher"]))
    rows: list = []
    with pytest.raises(OutOfTime) as info:
        latency.collect(args, rows, _Checks(2))  # build and time the first student, then stop
    assert len(rows) == 1 and "median_ms" in rows[0]
    assert info.value.what == f"main: {args.students[1]}-h8 n=6"


def test_suite_out_of_time_keeps_finished_runs(tmp_path, one_thread):
    from benchmarks.run import build_parser, run_suite

    argv = ["--suite", "synthetic", "--tiny", "--epochs", "1", "--seeds", "1", "--limit-batches", "1",
            "--batch-size", "16", "--students", "gcn-gru", "--peers", "none", "--latency-iters", "1",
            "--latency-warmup", "1", "--latency-batches", "1"]
    args = build_parser().parse_args(argv)
    args.argv, args.seed_list, args.deadline = argv, [0], _Checks(2)  # teacher and plain student only
    rec = run_suite(args)
    assert rec["completed"] is False and rec["reached"] == "seed 0: gcn-gru h32 + KD"
    assert [m["label"] for m in rec["models"]] == ["graph-wavenet (teacher)", "gcn-gru h32"]
    assert any("2 of 3 training runs finished" in n for n in rec["notes"])


class _Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_time_shares_split_what_is_left_by_weight():
    clock = _Clock()
    deadline = Deadline.after(100.0, clock=clock)
    shares = TimeShares(deadline, 5.0, reserve=10.0)
    (first,) = shares.callbacks(3.0)  # 3 of 5 weights of the 90 s left
    assert first.until == 1000.0 + 54.0
    clock.now += 30.0  # the first run took 30 s: 70 s left, 60 after the reserve
    (second,) = shares.callbacks(1.0)  # 1 of the 2 weights left
    assert second.until == 1030.0 + 30.0
    assert TimeShares(None, 3.0).callbacks(1.0) == []
    assert Deadline().remaining() == float("inf") and not Deadline().expired()
    assert deadline.remaining() == 70.0 and not deadline.expired()
    clock.now += 70.0
    assert deadline.expired() and deadline.remaining() == 0.0
    assert Deadline(5.0, clock=clock).earliest(Deadline(3.0)).end == 3.0


def test_failed_and_partial_parts_render():
    base = {"schema": "stgkd-bench/1", "date": "2026-11-30", "started": "2026-11-30T00:00:00+00:00",
            "command": "python -m benchmarks.gpu", "notes": [],
            "environment": {"device": "cuda", "device_name": "H200", "torch": "2.11", "cuda": "13.0",
                            "threads": 16}}
    failed = {**base, "suite": "latency", "protocol": "latency", "title": "Inference latency", "_file": "a.json",
              "completed": False, "run": {"id": "r1", "part": "latency", "index": 1, "budget_s": 60, "wall_s": 3.0,
                                          "reached": None, "error": "RuntimeError: boom", "smoke": False}}
    partial = {**base, "suite": "model-timing", "protocol": "model-timing", "title": "Timing", "_file": "b.json",
               "completed": False, "reached": "dcrnn B=64 bf16 forward", "graph": "g", "nodes": 207, "iters": 20,
               "warmup": 5, "models": [],
               "run": {"id": "r1", "part": "timing", "index": 2, "budget_s": 40, "wall_s": 41.0,
                       "reached": "dcrnn B=64 bf16 forward", "error": None, "smoke": False}}
    text = render([failed, partial])
    assert "**Failed** after 3 s: `RuntimeError: boom`" in text
    assert "| 1 | latency | 60 | 3.0 | failed: RuntimeError: boom |" in text
    assert "cut short before dcrnn B=64 bf16 forward" in text and "**Cut short** by its time budget of 40 s" in text


def test_latency_goals_are_computed_from_cuda_rows():
    from benchmarks.table.latency import _latency_goals

    def row(model, batch, mode, ms, section="main"):
        return {"section": section, "model": model, "batch": batch, "mode": mode, "dtype": "fp32", "median_ms": ms}

    rec = {"students": ["gcn-gru"], "results": [
        row("graph-wavenet", 1, "cuda-graph", 0.8), row("graph-wavenet", 64, "cuda-graph", 4.0),
        row("gcn-gru-h32", 1, "cuda-graph", 0.05), row("gcn-gru-h32", 64, "cuda-graph", 1.0),
        row("gcn-gru-h32", 1, "eager", 0.5), row("pgt-a3tgcn2", 1, "eager", 10.0, "peers"),
        row("pgt-tgcn2-stepped", 1, "eager", 3.0, "peers")]}
    (lat, peers) = _latency_goals(rec)
    assert "0.050 ms at batch 1 as a CUDA graph (goal < 0.1 ms: **met**)" in lat
    assert "16.0× faster than Graph WaveNet's CUDA graph at batch 1 (goal ≥ 10×: **met**)" in lat
    assert "4.0× at batch 64 (goal ≥ 5×: **not met**)" in lat
    assert "a3tgcn2 200× (20× eager to eager), tgcn2-stepped 60× (6× eager to eager)" in peers
    assert peers.endswith("**not met**.")


# ---------------------------------------------------------------- parts in their own processes


def _crashing_part(part_name: str, script: str, monkeypatch) -> None:
    """Run ``script`` instead of the part ``part_name``'s process (the other parts run for real)."""
    real = gpu._part_command
    monkeypatch.setattr(gpu, "_part_command", lambda part, request: (
        [sys.executable, "-c", script] if part.name == part_name else real(part, request)))


def test_a_part_that_crashes_costs_the_other_parts_nothing(tmp_path, one_thread, monkeypatch):
    """The latency part's process dies as a CUDA error can kill it (abort, no record written): the parts
    before and after it write their records, the parent records the death, RESULTS.md is rendered once."""
    _crashing_part("latency", "import os, sys; print('latency: timing graph-wavenet b64', file=sys.stderr); "
                              "print('CUDA error: an illegal memory access was encountered', file=sys.stderr); "
                              "sys.stderr.flush(); os.abort()", monkeypatch)
    renders = []
    real_render = gpu._render
    monkeypatch.setattr(gpu, "_render", lambda *a: renders.append(1) or real_render(*a))
    out = tmp_path / "out"
    argv = ["--smoke", "--out", str(out), "--workdir", str(tmp_path / "work"), "--parts", "environment", "latency",
            "timing"]
    assert gpu.main(argv) == 1  # a part failed
    recs = _records(out)
    assert set(recs) == {"environment", "latency", "timing"}
    for name in ("environment", "timing"):
        assert recs[name]["completed"] and recs[name]["run"]["exit_code"] == 0 and recs[name]["run"]["error"] is None
    assert recs["timing"]["models"] and recs["environment"]["details"]["gpu"] == {"skipped": "no CUDA device"}
    dead = recs["latency"]
    assert dead["completed"] is False and dead["run"]["exit_code"] == -signal.SIGABRT
    assert dead["run"]["error"].startswith("its process ended by signal SIGABRT and wrote no record")
    assert "(last line: CUDA error: an illegal memory access was encountered)" in dead["run"]["error"]
    assert "latency: timing graph-wavenet b64" in dead["run"]["stderr_tail"]
    assert dead["suite"] == "latency" and dead["environment"]["device"] == "cpu"
    assert renders == [1]
    text = (out / "RESULTS.md").read_text()
    assert "**Failed** after" in text and "its process ended by signal SIGABRT" in text
    assert "CUDA error: an illegal memory access was encountered" in text  # the last lines it wrote
    assert "| 3 | timing |" in text and "| 2 | latency |" in text


def test_a_part_past_its_deadline_and_grace_is_stopped_and_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu, "PARTS", [dataclasses.replace(p, grace_s=0.5) for p in gpu.PARTS])
    monkeypatch.setattr(gpu, "TERM_WAIT_S", 2.0)
    _crashing_part("environment", "import sys, time; print('reading clocks', file=sys.stderr, flush=True); "
                                  "time.sleep(120)", monkeypatch)
    out = tmp_path / "out"
    t0 = time.monotonic()
    assert gpu.main(["--smoke", "--out", str(out), "--workdir", str(tmp_path / "work"), "--parts", "environment",
                     "--budget-environment", "1"]) == 1
    assert time.monotonic() - t0 < 60  # not the 120 s the process wanted
    rec = _records(out)["environment"]
    assert rec["run"]["ended"] == "stopped from outside 0.5 s past its deadline (SIGTERM)"
    assert rec["run"]["exit_code"] == -signal.SIGTERM and "reading clocks" in rec["run"]["stderr_tail"]
    assert rec["run"]["error"].startswith("its process stopped from outside 0.5 s past its deadline (SIGTERM) and "
                                          "wrote no record (last line: reading clocks)")


def _ctx(tmp_path: Path, **kw) -> Context:
    base = dict(device="cpu", smoke=True, week=None, work=tmp_path, run_id="r",
                command="python -m benchmarks.gpu --smoke", log=lambda msg: None)
    base.update(kw)
    return Context(**base)


def test_sigterm_stops_a_part_where_it_is_and_keeps_what_it_measured(tmp_path):
    """What a part's process does when the parent stops it: the work stops at once, as past a deadline,
    and the record keeps what was measured (the process then writes it)."""
    rows: list[int] = []

    def run(ctx, deadline):
        try:
            for i in range(500):
                rows.append(i)
                if i == 3:
                    os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.01)
        except OutOfTime as exc:
            return {"results": list(rows), "reached": exc.what}
        return {"results": list(rows)}

    part = Part("latency", "latency", "a part", 5.0, run, lambda smoke: "")
    before = signal.signal(signal.SIGTERM, gpu._stop_from_outside)
    try:
        rec = gpu.run_part(part, _ctx(tmp_path), Deadline(), index=1, budget_s=5.0)
    finally:
        signal.signal(signal.SIGTERM, before)
    assert rec["results"][:4] == [0, 1, 2, 3] and len(rec["results"]) < 20
    assert rec["completed"] is False and "its process was stopped at its time limit" in rec["reached"]
    assert rec["run"]["error"] is None


# ---------------------------------------------------------------- the plan


def test_the_plan_fits_its_limit_with_install_grace_and_rendering():
    budgets = [p.budget_s for p in gpu.PARTS]
    p = gpu.plan(gpu.PARTS, budgets)
    assert p["fits"] and p["total_s"] <= gpu.PLAN_LIMIT_S == 480.0
    starts = gpu.STARTUP_S * len(budgets)  # each part's process start (11-16 s measured on the H200)
    assert gpu.STARTUP_S >= 15.0
    assert p["total_s"] == (gpu.INSTALL_S + sum(budgets) + starts + gpu.PARTS[-1].grace_s + gpu.TERM_WAIT_S
                            + gpu.RENDER_S)
    # a part's deadline leaves its process time to start on top of its budget
    assert [r["ends_s"] for r in p["rows"]] == [sum(budgets[: i + 1]) + (i + 1) * gpu.STARTUP_S
                                                for i in range(len(budgets))]
    over = gpu.plan(gpu.PARTS, budgets[:-1] + [budgets[-1] + 60])
    assert not over["fits"] and over["total_s"] == p["total_s"] + 60
    # in order of value: the environment first, the latency table before everything else, the profile, then the
    # CUDA tests; Graph WaveNet and the students before the peers, the tuning study on the metr-la-week teacher last
    assert [q.name for q in gpu.PARTS] == ["environment", "latency", "profile", "cuda-tests", "timing", "metr-la-week",
                                           "tuning"]


def test_plan_prints_parts_models_and_budgets_and_runs_nothing(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(gpu, "_launch", lambda *a, **k: pytest.fail("--plan started a part"))
    monkeypatch.setattr(gpu, "_render", lambda *a, **k: pytest.fail("--plan rendered RESULTS.md"))
    monkeypatch.chdir(tmp_path)
    assert gpu.main(["--plan"]) == 0
    text = capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
    lines = text.splitlines()
    for i, part in enumerate(gpu.PARTS, start=1):
        row = next(line for line in lines if line.split()[:2] == [str(i), part.name])
        assert f" {part.budget_s:.0f} " in row
    profile = next(line for line in lines if line.split()[:2] == ["3", "profile"])
    assert f"{DEFAULT_STUDENT} w32 (the default student), then graph-wavenet" in profile
    assert "batch 1 and 64" in profile
    assert "eager, cuda-graph, compile" in profile
    assert "pytest -m cuda" in next(line for line in lines if line.split()[:2] == ["4", "cuda-tests"])
    timing = next(line for line in lines if line.split()[:2] == ["5", "timing"])
    order = timing.split("in this order: ")[1].split(";")[0].split(", ")
    assert order[0] == "graph-wavenet" and order.index("gcn-gru") < order.index("dcrnn")
    assert order.index("gru") < order.index("agcrn") < order.index("pgt-tgcn")
    week = next(line for line in lines if line.split()[:2] == ["6", "metr-la-week"])
    assert "3 seed(s)" in week and week.index("gcn-gru h32 structured") < week.index("pgt-tgcn")
    assert f"graph-wavenet (teacher), {DEFAULT_STUDENT} h32 (plain, then distilled)" in week
    tuning = next(line for line in lines if line.split()[:2] == ["7", "tuning"])
    assert f"{DEFAULT_STUDENT} (the default student) first" in tuning and "1/10 of graph-wavenet's" in tuning
    assert "at least 10 epochs" in week
    assert f"= {gpu.plan(gpu.PARTS, [p.budget_s for p in gpu.PARTS])['total_s']:.0f} s at most: fits the 480 s" in text
    assert gpu.main(["--plan", "--budget-metr-la-week", "200"]) == 0
    assert "DOES NOT FIT (over by 135 s)" in capsys.readouterr().out  # 200 s instead of its 65


# ---------------------------------------------------------------- capture failures inside a part


def test_a_model_that_cannot_be_captured_is_recorded_and_the_part_goes_on(monkeypatch):
    """One model is refused by the capture probe, another's capture fails in the process itself: both are
    recorded as not capturable, their eager rows are measured, the models after them are timed, and the
    allocator is never emptied after the failed capture."""
    import stgkd.latency
    from benchmarks import latency
    from benchmarks.capture import model_config, setting_key

    args = latency.resolve_args(latency.build_parser().parse_args(
        ["--device", "cpu", "--sections", "main", "--nodes", "6", "--batch", "1", "--modes", "eager", "cuda-graph",
         "--dtypes", "fp32", "--widths", "4", "--warmup", "1", "--iters", "1", "--no-teacher",
         "--students", "gru", "gcn-gru", "dcgru"]))
    args.device_kind = "cuda"  # what is under test is the bookkeeping around captures, run on the CPU
    refused = setting_key(model_config("gru", 6, hidden=4), 1, "fp32")
    monkeypatch.setattr(latency, "probe_missing", lambda jobs, known, **kw: {
        j.key: ("RuntimeError: operation not permitted when stream is capturing" if j.key == refused else None)
        for j in jobs})
    monkeypatch.setattr(stgkd.latency, "_FAILED_CAPTURE", [])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: pytest.fail("empty_cache after a failed capture"))
    real_measure = stgkd.latency.measure

    def measure(model, *, mode, name, **kw):
        if mode == "cuda-graph":
            if name == "gcn-gru-h4" or stgkd.latency.failed_capture():
                stgkd.latency._FAILED_CAPTURE.append(f"{name}: RuntimeError: CUDA error: capture invalidated")
                raise stgkd.latency.CaptureError(f"{name}: the CUDA-graph capture failed (CUDA error)")
        return dataclasses.replace(real_measure(model, mode="eager", name=name, **kw), mode=mode)

    monkeypatch.setattr(stgkd.latency, "measure", measure)
    rows: list = []
    verdicts = latency.probe_captures(args)
    latency.collect(args, rows, verdicts=verdicts)
    by = {(r["model"], r["mode"]): r for r in rows}
    assert by[("gru-h4", "cuda-graph")]["skipped"] == (
        "not capturable: RuntimeError: operation not permitted when stream is capturing")
    assert by[("gcn-gru-h4", "cuda-graph")]["skipped"].startswith("not capturable: CaptureError: gcn-gru-h4: the")
    assert "median_ms" in by[("gru-h4", "eager")] and "median_ms" in by[("gcn-gru-h4", "eager")]
    assert "median_ms" in by[("dcgru-h4", "eager")]  # the part went on after the failed capture
    assert by[("dcgru-h4", "cuda-graph")]["skipped"].startswith("not capturable: CaptureError")


def test_an_error_in_the_latency_part_keeps_the_rows_measured_before_it(monkeypatch, tmp_path):
    from benchmarks import gpu_parts, latency

    def collect(args, rows, deadline=None, verdicts=None):
        rows.append({"section": "main", "model": "graph-wavenet", "batch": 1, "mode": "eager", "dtype": "fp32",
                     "median_ms": 4.2})
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(latency, "collect", collect)
    rec = gpu.run_part(next(p for p in gpu.PARTS if p.name == "latency"), _ctx(tmp_path), Deadline(), index=2,
                       budget_s=60.0)
    assert rec["results"] == [{"section": "main", "model": "graph-wavenet", "batch": 1, "mode": "eager",
                               "dtype": "fp32", "median_ms": 4.2}]
    assert rec["run"]["error"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert rec["completed"] is False and gpu_parts.NO_CUDA == "no CUDA device"
    rec["_file"] = "latency-cuda.json"
    text = render([rec])
    assert "**Failed** after" in text and "what it measured before is shown" in text and "| graph-wavenet |" in text


# ---------------------------------------------------------------- the tuning budget from the teacher's latency


def test_the_tuning_budget_is_set_from_the_teachers_cuda_graph_figure_of_the_latency_part():
    """The latency part hands on Graph WaveNet's CUDA-graph latency at batch 1, fp32 (tuning.budget sets the
    study's budget from it): the batch-64 row and a CPU row are not that figure."""
    from benchmarks import gpu_parts

    rows = [{"section": "main", "model": "graph-wavenet", "mode": "cuda-graph", "dtype": "fp32", "batch": 1,
             "device_kind": "cuda", "median_ms": 0.713},
            {"section": "main", "model": "graph-wavenet", "mode": "cuda-graph", "dtype": "fp32", "batch": 64,
             "device_kind": "cuda", "median_ms": 5.11}]
    assert gpu_parts._teacher_graph_b1(rows) == 0.713
    assert gpu_parts._teacher_graph_b1(rows[1:]) is None
    assert gpu_parts._teacher_graph_b1([{**rows[0], "device_kind": "cpu"}]) is None


def test_the_profile_part_keeps_the_batches_a_stopped_child_wrote(monkeypatch, tmp_path):
    """The teacher's profile child is stopped after its batch-1 report: the record keeps the student's two
    reports and the teacher's one, says how far it got, and summarises every mode."""
    from benchmarks import profile

    def fake_child(argv, seconds, log):
        out, model = Path(argv[argv.index("--out") + 1]), argv[argv.index("--model") + 1]
        batches = [1, 2] if model == DEFAULT_STUDENT else [1]
        for b in batches:
            report = {"conditions": {"model": model, "width": 4, "batch": b, "device_kind": "cpu"},
                      "modes": [{"mode": "eager", "wall_ms_per_forward": 0.5, "kernels_per_forward": 0,
                                 "device_busy_us_per_forward": 0.0, "launch_calls_per_forward": {}},
                                {"mode": "cuda-graph", "skipped": "needs a CUDA device"}]}
            (out / f"profile-cpu-2026-12-07-{model}-w4-b{b}.json").write_text(json.dumps(report))
            (out / f"profile-cpu-2026-12-07-{model}-w4-b{b}.md").write_text("# Profile\n")
        return {"exit_code": 0, "ended": "exited"} if len(batches) == 2 else {"exit_code": -15,
                                                                             "ended": "stopped at its time (9 s)"}

    monkeypatch.setattr(profile, "_run_child", fake_child)
    rec = profile.part_profile(_ctx(tmp_path), Deadline.after(60.0))
    assert [(r["model"], r["batches"]) for r in rec["runs"]] == [(DEFAULT_STUDENT, [1, 2]), ("graph-wavenet", [1])]
    assert rec["reached"] == "graph-wavenet: stopped at its time (9 s) (exit code -15), batches [1] written"
    assert len(rec["reports"]) == 3 and sorted(rec["_artifacts"]) == sorted(
        [f"{DEFAULT_STUDENT}-b1.md", f"{DEFAULT_STUDENT}-b2.md", "graph-wavenet-b1.md"])
    assert rec["summary"][0] == {"model": DEFAULT_STUDENT, "width": 4, "batch": 1, "mode": "eager",
                                 "device_kind": "cpu", "wall_ms_per_forward": 0.5, "kernels_per_forward": 0,
                                 "device_busy_us_per_forward": 0.0, "launch_calls_per_forward": {},
                                 "max_abs_diff_to_eager": None, "within_1e-4": None}
    assert rec["summary"][1]["skipped"] == "needs a CUDA device"


def test_the_cuda_tests_part_records_each_tests_outcome(monkeypatch, tmp_path):
    """The part runs ``pytest -m cuda`` in a child and reads its JUnit report (the child faked here: it writes a
    report with one test of each outcome); RESULTS.md shows the counts and every test."""
    from benchmarks import gpu_parts
    from benchmarks.table.parts import cuda_tests_section

    junit = """<testsuites><testsuite>
      <testcase classname="tests.test_forecaster" name="test_ok" time="1.25"/>
      <testcase classname="tests.test_export" name="test_bad" time="3.5">
        <failure message="assert (a | b) &lt;= 0.0001"/></testcase>
      <testcase classname="tests.nn.test_dcgru.TestDCGRU" name="test_skip" time="0">
        <skipped message="no GPU"/></testcase>
      <testcase time="0.000"/>
    </testsuite></testsuites>"""
    seen = {}

    def fake_child(argv, seconds, *, term_wait, cwd, stop):
        seen.update(argv=argv, seconds=seconds, stop=stop)
        Path(next(a for a in argv if a.startswith("--junitxml=")).split("=", 1)[1]).write_text(junit)
        return 1, "exited"

    monkeypatch.setattr(gpu_parts, "run_child", fake_child)
    rec = gpu_parts.part_cuda_tests(_ctx(tmp_path), Deadline.after(40))
    assert seen["argv"][1:5] == ["-m", "pytest", "-m", "cuda"] and 0 < seen["seconds"] <= 40
    assert seen["stop"] == signal.SIGINT  # pytest writes its report when interrupted, not when terminated
    assert [(t["test"], t["outcome"]) for t in rec["tests"]] == [
        ("tests.test_forecaster::test_ok", "passed"), ("tests.test_export::test_bad", "failed"),
        ("tests.nn.test_dcgru.TestDCGRU::test_skip", "skipped")]
    assert rec["tests"][1]["message"] == "assert (a | b) <= 0.0001" and rec["exit_code"] == 1 and rec["reached"] is None
    full = dict(rec, _file="cuda-tests.json", suite="cuda-tests", protocol="cuda-tests", title="CUDA tests",
                command="python -m benchmarks.gpu", date="2026-12-08",
                environment={"device": "cuda", "device_name": "H100"})
    md = "\n".join(cuda_tests_section(full))
    assert "(exit code 1, exited): 1 passed, 1 failed, 1 skipped" in md
    assert "| `tests.test_export::test_bad` | failed | 3.5 | assert (a \\| b) <= 0.0001 |" in md

    # no report written this time: the last run's report is never read as this run's
    monkeypatch.setattr(gpu_parts, "run_child", lambda argv, seconds, **kw: (4, "exited"))
    assert (tmp_path / "cuda-tests.xml").is_file()
    assert gpu_parts.part_cuda_tests(_ctx(tmp_path), Deadline.after(40))["error"].startswith("pytest exited with 4")


def test_pytest_stopped_by_sigint_still_reports_the_tests_it_ran(tmp_path):
    """What the cuda-tests part relies on: a pytest child sent SIGINT ends its session and writes the JUnit report
    of the tests that finished (SIGTERM would kill it with no report). The signal is sent once the slow test has
    started, whatever the machine's speed."""
    import subprocess
    import xml.etree.ElementTree as ET

    started = tmp_path / "slow-started"
    (tmp_path / "test_two.py").write_text(f"import pathlib, time\n\ndef test_quick():\n    pass\n\n"
                                          f"def test_slow():\n    pathlib.Path({str(started)!r}).touch()\n"
                                          f"    time.sleep(60)\n")
    report = tmp_path / "report.xml"
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                             str(tmp_path / "test_two.py")], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the slow test never started"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    names = [c.get("name") for c in ET.parse(report).iter("testcase")]
    assert "test_quick" in names and "test_slow" not in names


def test_run_child_stops_with_the_signal_it_is_given(tmp_path):
    from benchmarks.budget import run_child

    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    code, ended = run_child(sleeper, 1.0, term_wait=10, cwd=tmp_path, stop=signal.SIGINT)
    assert ended == "stopped" and code in (1, -signal.SIGINT)  # a KeyboardInterrupt, not a SIGTERM's -15
    code, ended = run_child(sleeper, 1.0, term_wait=10, cwd=tmp_path)
    assert ended == "stopped" and code == -signal.SIGTERM
