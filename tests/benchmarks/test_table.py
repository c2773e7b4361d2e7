"""Aggregation over seeds, speed-ups, power-law fits and the RESULTS.md rendering, on hand-made records."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.table import (BUSY, MIN_PASSES, aggregate, appendix_reason, fmt_pm, goals, load_records, mean_spread,
                              power_law, render, write_markdown)


def _seed(seed: int, mae: float, *, peak=None) -> dict:
    h = {"mae": mae, "rmse": mae * 2, "mape": 0.1}
    return {"seed": seed, "test": {"15min": h, "30min": h, "60min": h, "avg": h}, "train_seconds_per_epoch": 2.0,
            "full_epoch_seconds_est": 8.0, "batches_per_epoch": 3, "batches_per_full_epoch": 12, "epochs_run": 1,
            "peak_gpu_mem_mb": peak}


def _record(device: str = "cpu") -> dict:
    lat = "cpu-eager" if device == "cpu" else "cuda-cuda-graph"
    return {
        "schema": "stgkd-bench/1", "suite": "synthetic", "title": "Toy", "protocol": "dcrnn", "description": "toy run",
        "published": None, "date": "2026-01-01", "started": "2026-01-01T00:00:00+00:00", "wall_seconds": 60.0,
        "command": "python -m benchmarks.run --suite synthetic",
        "environment": {"device": device, "device_name": "Test CPU", "torch": "2", "cuda": None, "threads": 2},
        "dataset": {"name": "toy", "nodes": 4, "steps": 100, "interval_minutes": 5, "split": [0.7, 0.1, 0.2],
                    "windows": [50, 10, 20]},
        "budget": {"seeds": [0, 1], "epochs": 1, "limit_batches": 3, "batch_size": 8, "lr": 0.001, "patience": 0,
                   "tiny": True, "teacher_hparams": {}},
        "notes": ["a note"],
        "models": [
            {"label": "gwn (teacher)", "model": "graph-wavenet", "kind": "teacher", "parameters": 1000, "flops": 2e6,
             "seeds": [_seed(0, 3.0), _seed(1, 3.2)], "latency": {f"{lat}-b1": {"median_ms": 10.0}, f"{lat}-b64": {"median_ms": 40.0}}},
            {"label": "s", "model": "gcn-gru", "kind": "student", "parameters": 10, "flops": 2e3,
             "seeds": [_seed(0, 4.0), _seed(1, 4.0)], "latency": {f"{lat}-b1": {"median_ms": 0.5}, f"{lat}-b64": {"median_ms": 8.0}}},
            {"label": "s + KD", "model": "gcn-gru", "kind": "student+kd", "parameters": 10, "flops": 2e3,
             "seeds": [_seed(0, 3.4), _seed(1, 3.6)], "latency": {f"{lat}-b1": {"median_ms": 2.0}}},
        ],
    }


def test_mean_spread_and_formatting():
    assert mean_spread([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2.0)), 2)
    assert mean_spread([5.0, None, float("nan")]) == (5.0, 0.0, 1)
    assert mean_spread([])[2] == 0
    assert fmt_pm(2.0, 0.5, 3) == "2.00 ± 0.50"
    assert fmt_pm(2.0, 0.0, 1) == "2.00"
    assert fmt_pm(0.071, 0.002, 2, scale=100, digits=1) == "7.1 ± 0.2"
    assert fmt_pm(math.nan, math.nan, 0) == "–"


def test_power_law_recovers_the_exponent():
    xs = [207, 883, 2000, 8600]
    a, k = power_law(xs, [3.0 * x**1.5 for x in xs])
    assert k == pytest.approx(1.5) and a == pytest.approx(3.0)
    assert power_law([10], [1.0]) is None


def test_aggregate_means_over_seeds_and_speedups_against_the_teacher():
    rows = {r["label"]: r for r in aggregate(_record())}
    assert [r["kind"] for r in aggregate(_record())] == ["teacher", "student", "student+kd"]
    t = rows["gwn (teacher)"]
    assert t["avg/mae"][0] == pytest.approx(3.1) and t["avg/mae"][2] == 2
    assert t["avg/rmse"][1] == pytest.approx(math.sqrt(0.08))  # rmse 6.0, 6.4
    assert rows["s"]["speedup/cpu-eager-b1"] == pytest.approx(20.0)
    assert rows["s"]["speedup/cpu-eager-b64"] == pytest.approx(5.0)
    assert rows["s + KD"]["speedup/cpu-eager-b64"] is None  # not measured for that model
    assert t["peak_mb"] is None  # CPU run: no GPU memory


def test_render_labels_cpu_latency_and_marks_cuda_not_measured(tmp_path):
    text = render([dict(_record(), _file="synthetic-cpu-2026-01-01.json")])
    assert "**CPU** eager b1 ms" in text and "CUDA latency was not measured" in text and "n/a (CPU)" in text
    assert "CUDA graph b1 ms" not in text
    assert "| s + KD | student+kd | 3.50 ± 0.14 |" in text
    assert "closes 56% of the plain student's gap" in text  # (4.0 - 3.5) / (4.0 - 3.1)
    assert "> a note" in text
    # the full-dataset quotes appear, marked as quoted, with their sources
    assert "Published results on the full datasets (quoted, not measured)" in text
    assert "| Graph WaveNet | 2.69 | 5.15 | 6.90 |" in text and "IJCAI 2019" in text
    assert "STID: no number quoted" in text


def test_render_cuda_columns(tmp_path):
    rec = _record("cuda")
    for m in rec["models"]:
        for s in m["seeds"]:
            s["peak_gpu_mem_mb"] = 100.0
    text = render([dict(rec, _file="x.json")])
    assert "CUDA graph b1 ms" in text and "CUDA latency was not measured" not in text and "| 100 ±" in text


def test_write_markdown_reads_every_json_file(tmp_path):
    (tmp_path / "synthetic-cpu-2026-01-01.json").write_text(json.dumps(_record()))
    (tmp_path / "notes.json").write_text("{\"unrelated\": 1}")
    assert len(load_records(tmp_path)) == 1
    write_markdown(tmp_path, tmp_path / "RESULTS.md")
    assert "synthetic-cpu-2026-01-01.json" in (tmp_path / "RESULTS.md").read_text()


# --------------------------------------------------------------------------- main body, appendix, goals


def _full(rec: dict, *, passes: int = MIN_PASSES) -> dict:
    """``rec`` trained at full size: every model saw ``passes`` passes over the training windows."""
    rec = json.loads(json.dumps(rec))
    rec["budget"]["tiny"] = False
    for m in rec["models"]:
        for s in m["seeds"]:
            s.update(epochs_run=passes, batches_per_epoch=12, batches_per_full_epoch=12)
    return rec


def _main_body(text: str) -> str:
    return text.split("## Appendix: reduced and smoke runs")[0]


def test_reduced_and_smoke_runs_go_to_the_appendix_with_the_reason():
    full = dict(_full(_record()), _file="synthetic-cpu-2026-01-01.json")
    assert appendix_reason(full) is None
    tiny = dict(_record(), _file="synthetic-cpu-2026-01-02.json")
    assert "--tiny" in appendix_reason(tiny)
    short = dict(_full(_record(), passes=MIN_PASSES - 1), _file="synthetic-cpu-2026-01-03.json")
    assert f"saw {MIN_PASSES - 1}.0 passes" in appendix_reason(short)
    marked = dict(_full(_record()), _file="synthetic-cpu-2026-01-04-24steps.json")
    assert "-24steps" in appendix_reason(marked)
    smoke = dict(_full(_record()), _file="synthetic-cpu-2026-01-05.json", run={"smoke": True})
    assert "smoke" in appendix_reason(smoke)
    text = render([full, tiny, short, marked, smoke])
    body, appendix = text.split("## Appendix: reduced and smoke runs")
    assert "synthetic-cpu-2026-01-01.json" in body and "## Headline" in body
    for rec in (tiny, short, marked, smoke):
        assert rec["_file"] not in body.split("## Goals")[0] and f"`{rec['_file']}`:" in appendix
    # the headline links to each section of the main body; the section states the run's budget
    headline = body.split("## Headline")[1].split("\n## ")[0]
    assert "](#toy--cpu--2026-01-01-synthetic-cpu-2026-01-01json)" in headline
    assert "(#goals-and-where-we-fall-short)" in headline
    assert "teacher 120 optimiser steps, at least 10 passes over the training windows per model" in body


def test_busy_latency_is_not_a_figure_and_gives_no_speed_up():
    rec = _full(_record())
    for m in rec["models"]:
        m["latency"]["cpu-eager-b1"] = dict(m["latency"]["cpu-eager-b1"], busy=True, load_average=[9.0, 9.0, 9.0])
    rows = {r["label"]: r for r in aggregate(rec)}
    assert rows["s"]["cpu-eager-b1"] is None and rows["s"]["speedup/cpu-eager-b1"] is None
    assert rows["s"]["speedup/cpu-eager-b64"] == pytest.approx(5.0)  # the idle figures still count
    text = render([dict(rec, _file="synthetic-cpu-2026-01-01.json")])
    row = next(line for line in text.splitlines() if line.startswith("| s | 10 | "))  # the cost table
    assert BUSY in row and "20.0×" not in row and "0.50" not in row
    assert "faster than the teacher" not in _main_body(text)  # no speed-up from a busy figure
    (busy_goal,) = [g for g in goals([dict(rec, _file="x.json")]) if "busy machine" in g["goal"]]
    assert busy_goal["status"] == "not met" and busy_goal["measured"].startswith("3 busy figure(s)")


def _latency_record(student_ms: float, *, busy: bool = False) -> dict:
    def row(model, batch, mode, ms, section="main"):
        return {"section": section, "model": model, "batch": batch, "mode": mode, "dtype": "fp32", "median_ms": ms,
                "parameters": 10, "threads": 1, "busy": busy and model != "graph-wavenet"}

    results = [row("graph-wavenet", 1, "cuda-graph", 2.0), row("graph-wavenet", 64, "cuda-graph", 8.0),
               row("gcn-gru-h32", 1, "cuda-graph", student_ms), row("gcn-gru-h32", 64, "cuda-graph", 1.0),
               row("pgt-a3tgcn2", 1, "eager", 20.0, "peers")]
    return {"schema": "stgkd-bench/1", "suite": "latency", "protocol": "latency", "title": "Inference latency",
            "date": "2026-01-01", "started": "2026-01-01T00:00:00+00:00", "command": "python -m benchmarks.latency",
            "environment": {"device": "cuda", "device_name": "Test GPU"}, "students": ["gcn-gru"], "widths": [32],
            "settings": {"iters": 100, "warmup": 10}, "results": results, "_file": "latency-cuda-20260101.json"}


def test_shortfalls_are_computed_from_the_records():
    fast, slow = _latency_record(0.05), _latency_record(0.5)
    by_goal = {g["goal"]: g for g in goals([fast])}
    assert by_goal["a width-32 student under 0.1 ms at batch 1 as a CUDA graph"]["status"] == "met by 1 of 1"
    assert "gcn-gru-h32 40.0×" in by_goal["width-32 students ≥ 10× faster than Graph WaveNet at batch 1"]["measured"]
    assert by_goal["GPU figures (CUDA latency, CUDA graph, peak GPU memory) measured"]["status"] == "met"
    shortfalls = render([slow]).split("**Where we fall short:**")[1]
    assert "under 0.1 ms at batch 1 as a CUDA graph: **not met** — gcn-gru-h32 0.500 ms" in shortfalls
    assert "under 0.1 ms" not in render([fast]).split("**Where we fall short:**")[1]
    # a busy student figure is neither shown nor assessed
    busy = render([_latency_record(0.05, busy=True)])
    assert BUSY in busy and "0.050" not in busy
    assert "met by" not in busy.split("**Where we fall short:**")[0].split("## Goals")[1]


def _ablation(settings: dict, *, name: str = "distill-ablation-cpu-2026-01-01.json", teacher_epochs: int = 30) -> dict:
    def runs(maes):
        return [{"seed": s, "test": {h: {"mae": v, "rmse": 2 * v, "mape": 0.1} for h in ("15min", "30min", "60min", "avg")}}
                for s, v in enumerate(maes)]

    t = {h: {"mae": 3.0, "rmse": 6.0, "mape": 0.1} for h in ("15min", "30min", "60min", "avg")}
    return {"schema": "stgkd-bench/1", "suite": "distill-ablation", "protocol": "distill-ablation",
            "title": "METR-LA week: students against a converged teacher", "date": "2026-01-01",
            "started": "2026-01-01T00:00+00:00", "environment": {"device": "cpu", "device_name": "Test CPU"},
            "command": "python -m benchmarks.distill_ablation", "machine": "cpu: Test CPU",
            "data": "toy", "student": "gcn-gru", "width": 32, "student_epochs": 12, "seeds": [0, 1, 2], "complete": True,
            "teacher": {"model": "graph-wavenet", "hparams": {}, "parameters": 1000, "path": "t.pt", "best_epoch": 20,
                        "seconds": 60.0, "epochs": teacher_epochs, "test": t},
            "settings": {k: {"student_hparams": hp, "distill": kd, "runs": runs(maes), "parameters": 10, "seconds": 1.0}
                         for k, (hp, kd, maes) in settings.items()}}


def test_ablations_pair_distillation_with_the_same_student_and_move_short_teachers_to_the_appendix(tmp_path):
    plain = {"w_out": 0.0, "w_feat": 0.0, "w_rel": 0.0}
    (tmp_path / "distill-ablation-cpu-2026-01-01.json").write_text(json.dumps(_ablation({
        "plain": ({}, plain, [4.0, 4.02, 3.98]),
        "embedding, plain": ({"node_embed": 16}, plain, [3.6, 3.62, 3.58]),
        "embedding, output": ({"node_embed": 16}, {"w_feat": 0.0, "w_rel": 0.0}, [3.5, 3.52, 3.48]),  # w_out default 1
    })))
    (tmp_path / "distill-ablation-cpu-2026-01-02.json").write_text(json.dumps(_ablation(
        {"plain": ({}, plain, [4.0, 4.0, 4.0])}, teacher_epochs=5)))
    records = load_records(tmp_path)
    assert [appendix_reason(r) is None for r in records] == [True, False]
    text = render(records)
    body = _main_body(text)
    # distillation measured against the same student trained plainly (3.5 vs 3.6), not against the plain gcn-gru
    assert "-0.100 ± 0.000 (vs embedding, plain)" in body
    assert "| embedding, output | 10 | 3.500 ± 0.020 |" in body and "50 %" in body  # (4.0 - 3.5) / (4.0 - 3.0)
    by_goal = {g["goal"]: g for g in goals(records)}
    assert by_goal["a student closes at least 50 % of its plain version's 60-minute gap to the teacher"]["status"] == "met"
    kd_goal = next(g for g in goals(records) if g["goal"].startswith("distillation beats"))
    assert kd_goal["status"] == "met" and "1 of 1 distilled settings" in kd_goal["measured"]
    assert "the teacher saw 5.0 passes" in text.split("## Appendix: reduced and smoke runs")[1]


def test_regime_section_shows_each_studys_own_tables(tmp_path):
    from benchmarks.table import regime_section

    assert regime_section(tmp_path) == ""
    report = {"date": "2026-01-01", "command": "python -m benchmarks.distill_regime", "recipes": ["dcgru w32 KD"]}
    (tmp_path / "distill-regime-cpu-x.json").write_text(json.dumps(report))
    (tmp_path / "distill-regime-cpu-x.md").write_text(
        "# Title\n\n- teacher: t.pt\n\n## Test masked MAE (mean ± sample std over seeds)\n\n| recipe | 60 min |\n"
        "|---|---|\n| dcgru w32 KD | 5.050 |\n\n## Distilled − plain (paired by seed)\n\n| recipe | Δ60 |\n|---|---|\n"
        "| dcgru w32 KD | -0.260 ± 0.000 |\n\n## Each term's share of the gradient norm\n\n| run | first |\n")
    (tmp_path / "distill-regime-cpu-y.json").write_text(json.dumps({"rows": []}))  # a screen record: not a study
    text = regime_section(tmp_path)
    assert "### `distill-regime-cpu-x.json` (2026-01-01)" in text and "distill-regime-cpu-y" not in text
    assert "#### Test masked MAE" in text and "| dcgru w32 KD | 5.050 |" in text
    assert "#### Distilled − plain" in text and "| dcgru w32 KD | -0.260 ± 0.000 |" in text
    assert "gradient norm" not in text


def test_a_run_reduced_by_design_says_why_and_a_dead_part_shows_its_last_lines():
    reduced = dict(_record(), _file="los-loop-cuda-2026-01-01.json",
                   reduced_by_design="1 seed, the reference student: what the GPU plan leaves")
    text = render([reduced])
    assert "> **Reduced by design**: 1 seed, the reference student: what the GPU plan leaves." in text
    dead = {"schema": "stgkd-bench/1", "suite": "latency", "protocol": "latency", "title": "Inference latency",
            "date": "2026-01-01", "started": "2026-01-01T00:00:00+00:00", "command": "python -m benchmarks.gpu",
            "notes": [], "completed": False, "_file": "latency-cuda-2026-01-01.json",
            "environment": {"device": "cuda", "device_name": "H200", "torch": "2.11", "cuda": "13.0", "threads": 16},
            "run": {"id": "r1", "part": "latency", "index": 2, "budget_s": 60, "wall_s": 12.0, "reached": None,
                    "error": "its process ended by signal SIGABRT and wrote no record", "exit_code": -6,
                    "stderr_tail": "timing gcn-gru-h32\nCUDA error: an illegal memory access was encountered\n",
                    "smoke": False}}
    text = render([dead])
    assert "**Failed** after 12 s: `its process ended by signal SIGABRT and wrote no record`; no figures." in text
    assert "Its process ended with -6; the last lines it wrote:" in text
    assert "```\ntiming gcn-gru-h32\nCUDA error: an illegal memory access was encountered\n```" in text


def test_records_that_are_not_runs_are_not_listed_and_the_quotes_come_from_their_record(tmp_path):
    from benchmarks.table.records import QUOTED, quoted

    (tmp_path / "published-full-datasets.json").write_text(QUOTED.read_text())
    (tmp_path / "student-frontier-screen-cpu-2026-01-01.json").write_text(json.dumps(
        {"schema": "stgkd-bench/1", "protocol": "frontier-screen", "rows": []}))
    assert load_records(tmp_path) == []
    rec = quoted()
    assert rec["protocol"] == "quoted" and all(q["source"] and q["checked"] for q in rec["quotes"])
    gwn = next(q for q in rec["quotes"] if (q["model"], q["dataset"]) == ("Graph WaveNet", "metr-la"))
    assert gwn["metrics"]["60min"] == {"mae": 3.53, "rmse": 7.37, "mape": 10.01}
