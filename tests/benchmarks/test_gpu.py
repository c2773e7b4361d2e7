"""``python -m benchmarks.gpu``: every part end to end at toy size on the CPU (``--smoke``), its time
budgets (a part cut short records how far it got), and the rendering of its records."""

from __future__ import annotations

import json
import time

import pytest
import torch

from benchmarks import gpu
from benchmarks.budget import Deadline, OutOfTime, TimeShares
from benchmarks.table.page import render

SUITES = {"environment": "environment", "latency": "latency", "timing": "model-timing", "scaling": "scaling",
          "metr-la-week": "metr-la-week", "los-loop": "los-loop", "tuning": "tuning"}


@pytest.fixture
def one_thread():
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
    t0 = time.monotonic()
    assert gpu.main(["--smoke", "--out", str(out), "--workdir", str(tmp_path / "work")]) == 0
    wall = time.monotonic() - t0

    recs = _records(out)
    assert set(recs) == {p.name for p in gpu.PARTS}
    for part, rec in recs.items():
        assert rec["schema"] == "stgkd-bench/1" and rec["suite"] == SUITES[part]
        assert rec["completed"] is True and rec["run"]["completed"] and rec["run"]["error"] is None
        assert rec["run"]["smoke"] and rec["command"].startswith("python -m benchmarks.gpu --smoke")
        assert (out / f"{rec['suite']}-cpu-{rec['date']}-smoke.json").is_file()
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
    assert ours() <= timed and {r["dtype"] for r in recs["timing"]["models"]} == {"fp32", "bf16"}
    assert {p["model"] for p in recs["scaling"]["points"]} == {"graph-wavenet", "gcn-gru"}
    for suite in ("metr-la-week", "los-loop"):
        labels = {m["label"] for m in recs[suite]["models"]}
        assert {"gcn-gru h32", "gcn-gru h32 + KD", "gcn-gru h32 structured + KD", "PGT TGCN"} <= labels
        assert recs[suite]["budget"]["time_budget_s"] > 0
    tuning = recs["tuning"]
    assert tuning["report"]["counts"]["total"] >= 2 and tuning["exit_code"] in (0, 1)
    assert any("no CUDA device" in n for n in tuning["notes"])
    assert tuning["calibration"]["mode"] == "eager" and tuning["calibration"]["budget_ms"] > 0
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
    assert wall < 120, f"the smoke run took {wall:.0f} s"


def test_parts_out_of_time_record_how_far_they_got(tmp_path, one_thread):
    out = tmp_path / "out"
    argv = ["--smoke", "--out", str(out), "--parts", "environment", "scaling", "--budget-environment", "0",
            "--budget-scaling", "60"]
    assert gpu.main(argv) == 0  # a part cut short is recorded, not an error
    recs = _records(out)
    env = recs["environment"]
    assert env["completed"] is False and env["run"]["reached"] == env["reached"]
    assert env["reached"].startswith("environment") and "details" not in env
    assert recs["scaling"]["completed"] is True  # the next part still runs, on its own budget
    text = (out / "RESULTS.md").read_text()
    assert "**Cut short** by its time budget of 0 s" in text and "Nothing measured." in text
    assert "| 1 | environment | 0 |" in text and "| 2 | scaling | 60 |" in text


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


def test_time_shares_split_what_is_left_by_weight():
    deadline = Deadline.after(100.0)
    shares = TimeShares(deadline, 5.0, reserve=10.0)
    (first,) = shares.callbacks(3.0)  # 3 of 5 weights of the 90 s left
    assert first.until - time.monotonic() == pytest.approx(54.0, abs=0.5)
    (second,) = shares.callbacks(1.0)  # 1 of the 2 weights left
    assert second.until - time.monotonic() == pytest.approx(45.0, abs=0.5)
    assert TimeShares(None, 3.0).callbacks(1.0) == []
    assert Deadline().remaining() == float("inf") and not Deadline().expired()
    assert Deadline.after(-1).expired() and Deadline.after(5).earliest(Deadline.after(1)).remaining() < 2


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
