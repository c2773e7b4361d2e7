"""The student frontier gathered from hand-made records: joins, busy records, missing timings, the advice,
and the best baseline in the rendered tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.table import render
from benchmarks.table.frontier import gather, study_fronts, which_student
from benchmarks.table.frontier_chart import CHART, frontier_section

WEEK = "../shared/data/metr-la-week"


def _h(m60: float, avg: float | None = None) -> dict[str, float]:
    return {"15min": m60 - 1.0, "30min": m60 - 0.5, "60min": m60, "avg": avg if avg is not None else m60 - 0.6}


def _metrics(m60: float) -> dict[str, dict[str, float]]:
    return {h: {"mae": v, "rmse": 2 * v, "mape": 0.1} for h, v in _h(m60).items()}


def _baselines_block() -> dict:
    return {"dataset": "metr-la-week", "split": "test", "windows": 399, "interval_minutes": 5, "out_steps": 12,
            "scored": [{"model": "last-value", "label": "last value", "hparams": {}, "in_steps": 1,
                        "metrics": _metrics(5.7)},
                       {"model": "historical-median", "label": "historical median", "hparams": {}, "in_steps": 1,
                        "metrics": _metrics(5.0)}],
            "left_out": [{"model": "seasonal-naive", "label": "seasonal naive (1 week)", "hparams": {},
                          "in_steps": 2016, "left_out": "needs 2016 steps of history"}],
            "best": {}}


def _screen_rows() -> list[dict]:
    rows = []
    for seed, m60 in ((0, 4.0), (1, 4.2)):
        rows.append({"name": f"lr1e-2-s{seed}", "what": "defaults with --lr 1e-2",
                     "command": f"stgkd train --dataset {WEEK} --model stgru --out runs/x/s{seed} --epochs 30 --test "
                                f"--seed {seed} --no-progress --overwrite --seasonal day --lr 1e-2",
                     "test": _h(m60), "val_mae": 3.0, "train_mae": 3.0, "best_epoch": 29, "epochs_run": 30,
                     "params": 300, "flops_b1": 2.5e7,
                     "input_features": ["value", "time_of_day", "seasonal_day", "seasonal_day_observed"],
                     "baselines": _baselines_block()})
    return rows


def _regime_run(recipe: str, seed: int, m60: float, params: int) -> dict:
    return {"recipe": recipe, "days": "all", "seed": seed, "test": _metrics(m60), "val_mae": 3.3,
            "parameters": params, "epochs_run": 30}


def _regime() -> dict:
    runs = {}
    for seed in (0, 1):
        for recipe, m60, params in (("gcn-gru w32 plain", 5.3, 50), ("gcn-gru w32 KD", 5.4, 50),
                                    ("dcgru w32 plain", 5.1, 70)):
            runs[f"{recipe} | all | {seed}"] = _regime_run(recipe, seed, m60, params)
    return {"date": "2026-01-01T00:00", "command": "python -m benchmarks.distill_regime ...", "machine": "cpu",
            "data": "PreparedData('metr-la-week', nodes=207, features=['value', 'time_of_day'], windows=1/1/1)",
            "teacher": {"path": "t.pt", "parameters": 1000, "test": _metrics(4.8), "epoch": 20},
            "recipes": ["gcn-gru w32 plain", "gcn-gru w32 KD", "dcgru w32 plain"], "days": ["all"], "seeds": [0, 1],
            "epochs": 30, "patience": 6, "lr": 0.003, "runs": runs}


def _lat_row(model: str, batch: int, ms: float, params: int, channels: int, *, section: str = "main") -> dict:
    return {"section": section, "model": model, "batch": batch, "median_ms": ms, "parameters": params,
            "channels": channels, "nodes": 207, "threads": 1, "mode": "eager", "dtype": "fp32", "iters": 20,
            "busy": False}


def _latency(started: str, rows: list[dict], *, busy: bool = False) -> dict:
    return {"schema": "stgkd-bench/1", "suite": "latency", "protocol": "latency", "title": "Inference latency",
            "started": started, "date": started[:10], "busy": busy, "command": "python -m benchmarks.latency ...",
            "environment": {"device": "cpu", "device_name": "Test CPU"}, "settings": {"iters": 20, "warmup": 3},
            "results": rows}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    d = tmp_path / "benchmarks" / "results"
    d.mkdir(parents=True)
    (d / "student-frontier-screen-cpu-2026-01-02.json").write_text(json.dumps(
        {"schema": "stgkd-bench/1", "suite": "student-frontier-screen", "protocol": "frontier-screen",
         "date": "2026-01-02", "command": "python -m benchmarks.frontier_screen ...", "rows": _screen_rows()}))
    (d / "distill-regime-cpu-2026-01-01-week.json").write_text(json.dumps(_regime()))
    idle = [_lat_row("graph-wavenet", 1, 20.0, 1000, 2), _lat_row("graph-wavenet", 64, 2000.0, 1000, 2),
            _lat_row("stgru-h32", 1, 2.0, 300, 4), _lat_row("stgru-h32", 64, 100.0, 300, 4),
            _lat_row("gcn-gru-h32", 1, 1.0, 50, 2), _lat_row("gcn-gru-h32", 64, 80.0, 50, 2),
            _lat_row("gru-h16", 1, 0.8, 20, 2)]
    (d / "latency-cpu-20260103-idle.json").write_text(json.dumps(_latency("2026-01-03T10:00:00+00:00", idle)))
    # newer, but timed on a busy machine: never used, not even for a model the idle record lacks
    busy = [_lat_row("graph-wavenet", 1, 40.0, 1000, 2), _lat_row("stgru-h32", 1, 0.5, 300, 4),
            _lat_row("dcgru-h32", 1, 3.0, 70, 2)]
    (d / "latency-cpu-20260104-busy.json").write_text(json.dumps(_latency("2026-01-04T10:00:00+00:00", busy, busy=True)))
    return d


def _point(front, label: str):
    return next(p for p in front.points if p.label == label)


def test_a_point_joins_its_accuracy_with_the_idle_timing_of_the_same_model(results):
    front = gather(results)
    p = _point(front, "stgru w32 plain, seasonal day input")
    assert p.score.mae["60min"] == pytest.approx((4.1, 0.1414, 2), abs=1e-4)
    assert p.timing.b1_ms == 2.0 and p.timing.b64_ms == 100.0
    assert p.timing.source == "latency-cpu-20260103-idle.json"  # not the newer busy record's 0.5 ms
    assert p.timing.speedup_b1 == pytest.approx(10.0) and p.timing.speedup_b64 == pytest.approx(20.0)
    assert p.flops == 2.5e7 and p.score.source == "student-frontier-screen-cpu-2026-01-02.json"
    assert "--lr 1e-2" in p.score.flags and "--seasonal day" in p.score.flags and "--epochs 30" in p.score.flags
    assert "2 seeds mean ± std" in p.score.flags
    teacher = next(p for p in front.points if p.score.role == "teacher")
    assert teacher.mae60 == 4.8 and teacher.timing.b1_ms == 20.0  # the busy record's 40 ms is not used
    assert front.baselines["historical median"]["60min"] == 5.0


def test_a_missing_timing_is_listed_not_invented(results):
    front = gather(results)
    dcgru = _point(front, "dcgru w32 plain")
    assert dcgru.timing is None and dcgru not in front.charted  # only the busy record timed it
    missing = dict(front.missing)
    assert "no idle one-thread CPU latency record has `dcgru` with 70 parameters" in missing["dcgru w32 plain"]
    assert missing["gru-h16"].startswith("timed (`latency-cpu-20260103-idle.json`) but no accuracy record")
    lines = frontier_section(results, results.parent / "RESULTS.md")
    row = next(line for line in lines if "| dcgru w32 plain |" in line)
    assert "not timed" in row and "5.10 ± 0.00 †" in row  # worse than the historical median's 5.00
    assert "**Not on the latency panel**" in "\n".join(lines) and (results / CHART).stat().st_size > 0
    assert "| baseline: historical median (best at 60 min) | 5.00 |" in "\n".join(lines)


def test_which_student_names_the_most_accurate_within_each_latency(results):
    lines = which_student(gather(results))
    steps = [line for line in lines if line.startswith("- from ")]
    # gcn-gru (5.30 at 1 ms) is faster, but the historical median (5.00) beats it: not a step of the advice
    assert [s.split("**")[1] for s in steps] == ["stgru w32 plain, seasonal day input"]
    assert steps[0].startswith("- from 2.00 ms")
    assert "10.0× faster than Graph WaveNet at batch 1, 20.0× at batch 64" in steps[0]
    assert "-0.90 against the best baseline (historical median, 5.00)" in steps[0]
    losing = next(line for line in lines if line.startswith("Not advised"))
    assert "gcn-gru w32 plain (5.30, 1.00 ms)" in losing and "gcn-gru w32 distilled (5.40, 1.00 ms)" in losing


def test_which_student_is_chosen_on_validation_not_on_test(results):
    """Two students where validation and test disagree: the faster one is better on validation and worse on test;
    the slower one, better on test, is no step of the advice. A student without a validation MAE is not ranked."""
    from dataclasses import replace

    front = gather(results)
    p = _point(front, "stgru w32 plain, seasonal day input")
    fast = replace(p, score=replace(p.score, family="fast", val=2.80, mae={**p.score.mae, "60min": (4.40, 0.0, 1)}),
                   timing=replace(p.timing, b1_ms=1.50))
    slow = replace(p, score=replace(p.score, family="slow", val=2.90, mae={**p.score.mae, "60min": (4.00, 0.0, 1)}),
                   timing=replace(p.timing, b1_ms=1.80))
    blind = replace(p, score=replace(p.score, family="blind", val=None, mae={**p.score.mae, "60min": (3.50, 0.0, 1)}),
                    timing=replace(p.timing, b1_ms=1.60))
    front.points = [q for q in front.points if q.score.role != "student"] + [fast, slow, blind]
    lines = which_student(front)
    steps = [line for line in lines if line.startswith("- from ")]
    assert [s.split("**")[1].split(" ")[0] for s in steps] == ["fast"]
    assert "validation 2.800, test 4.40 at 60 min" in steps[0]
    assert any(line.startswith("Every other") and "slow w32" in line for line in lines)
    assert any(line.startswith("Not ranked, no validation MAE") and "blind w32" in line for line in lines)
    front.points = [q for q in front.points if q.score.role != "student"] + [blind]
    assert "- none ranked: no charted student better than the best baseline has a validation MAE on record." in (
        which_student(front))


def test_the_best_baseline_is_a_row_of_a_suite_table_and_worse_models_are_marked():
    rec = {
        "schema": "stgkd-bench/1", "suite": "metr-la-week", "title": "Week", "protocol": "dcrnn", "description": "",
        "published": None, "date": "2026-01-01", "started": "2026-01-01T00:00:00+00:00", "wall_seconds": 60.0,
        "command": "python -m benchmarks.run --suite metr-la-week", "_file": "metr-la-week-cpu-2026-01-01.json",
        "environment": {"device": "cpu", "device_name": "Test CPU", "torch": "2", "cuda": None, "threads": 1},
        "dataset": {"name": "metr-la-week", "nodes": 207, "steps": 2016, "interval_minutes": 5},
        "budget": {"seeds": [0], "epochs": 30, "limit_batches": None, "batch_size": 64, "lr": 0.001, "patience": 10,
                   "tiny": False, "teacher_hparams": {}},
        "notes": [], "baselines": _baselines_block(),
        "models": [{"label": "gwn (teacher)", "model": "graph-wavenet", "kind": "teacher", "parameters": 1000,
                    "seeds": [{"seed": 0, "test": _metrics(4.8)}]},
                   {"label": "s", "model": "gcn-gru", "kind": "student", "parameters": 50,
                    "seeds": [{"seed": 0, "test": _metrics(5.3)}]}],
    }
    text = render([rec])
    assert ("| best baseline | baseline | 4.00 (historical median) | – | – | 4.50 (historical median) | – | – | "
            "5.00 (historical median) | – | – | 4.40 (historical median) | – | – | – |") in text
    # the student is worse than the historical median at every horizon, the teacher at none
    assert ("| s | student | 4.30 † | 8.60 | 10.0 | 4.80 † | 9.60 | 10.0 | 5.30 † | 10.60 | 10.0 | 4.70 † | 9.40 | "
            "10.0 | 1 |") in text
    assert ("| gwn (teacher) | teacher | 3.80 | 7.60 | 10.0 | 4.30 | 8.60 | 10.0 | 4.80 | 9.60 | 10.0 | 4.20 | 8.40 | "
            "10.0 | 1 |") in text
    assert "Left out: seasonal naive (1 week): needs 2016 steps of history." in text


def test_the_best_baseline_is_a_row_of_an_ablation_table(tmp_path):
    from benchmarks.table import load_records

    runs = [{"seed": s, "test": {h: {"mae": 4.2, "rmse": 8.4, "mape": 0.1} for h in ("15min", "30min", "60min", "avg")}}
            for s in (0, 1)]
    report = {"schema": "stgkd-bench/1", "suite": "distill-ablation", "protocol": "distill-ablation",
              "title": "METR-LA week: students against a converged teacher", "date": "2026-01-01",
              "started": "2026-01-01T00:00+00:00", "environment": {"device": "cpu", "device_name": "CPU"},
              "command": "python -m benchmarks.distill_ablation", "machine": "cpu: CPU",
              "data": "toy", "student": "gcn-gru", "width": 32, "student_epochs": 12, "seeds": [0, 1], "complete": True,
              "teacher": {"model": "graph-wavenet", "hparams": {}, "parameters": 1000, "path": "t.pt", "best_epoch": 20,
                          "seconds": 60.0, "epochs": 30, "test": _metrics(4.8)},
              "settings": {"plain": {"student_hparams": {}, "distill": {"w_out": 0.0, "w_feat": 0.0, "w_rel": 0.0},
                                     "runs": runs, "parameters": 10}},
              "baselines": _baselines_block()}
    (tmp_path / "distill-ablation-cpu-2026-01-01.json").write_text(json.dumps(report))
    text = render(load_records(tmp_path))
    assert ("| best baseline | – | 4.000 (historical median) | 4.500 (historical median) | 5.000 (historical median) | "
            "4.400 (historical median) |") in text
    # 4.2 is worse than the median's 4.0 at 15 minutes only; the teacher's 3.8 / 4.3 / 4.8 / 4.2 nowhere
    assert "| plain | 10 | 4.200 ± 0.000 † | 4.200 ± 0.000 | 4.200 ± 0.000 | 4.200 ± 0.000 |" in text
    assert "| teacher | 1,000 | 3.800 | 4.300 | 4.800 | 4.200 |" in text


def _study(load_end: list[float], *, test: bool = True, threads: int = 1) -> dict:
    front = [{"number": n, "params": {"family": fam, "hidden": w}, "latency_ms": ms,
              "test": _metrics(m60) if test else None} for n, fam, w, ms, m60 in
             [(3, "gru", 16, 0.9, 4.6), (0, "stgru", 32, 2.2, 4.1)]]
    return {"study": "s", "objectives": ["val MAE", "latency (ms)"], "pareto_front": front,
            "settings": {"dataset": WEEK, "epochs": 8, "load_average": {"start": [0.5, 0.4, 0.3], "end": load_end},
                         "latency": {"device_kind": "cpu", "batch": 1, "mode": "eager", "dtype": "fp32",
                                     "device_name": f"Test CPU ({threads} threads)"}}}


def test_a_tuning_studys_front_is_drawn_only_from_an_idle_one_thread_study_scored_on_test(results, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    (results / "tuning-metr-la-week-cpu-2026-01-05.json").write_text(json.dumps(_study([0.9, 0.8, 0.7])))
    (results / "tuning-metr-la-week-cpu-2026-01-06.json").write_text(json.dumps(_study([3.5, 2.0, 1.0])))
    (results / "tuning-metr-la-week-cpu-2026-01-07.json").write_text(json.dumps(_study([0.9, 0.8, 0.7], test=False)))
    (results / "tuning-metr-la-week-cpu-2026-01-08.json").write_text(json.dumps(_study([0.9, 0.8, 0.7], threads=2)))
    fronts, skipped = study_fronts(results)
    assert [f.source for f in fronts] == ["tuning-metr-la-week-cpu-2026-01-05.json"]
    assert fronts[0].trials == [(3, "gru", 16, 0.9, 4.6), (0, "stgru", 32, 2.2, 4.1)] and fronts[0].epochs == 8
    assert dict(skipped) == {"`tuning-metr-la-week-cpu-2026-01-06.json`": "timed on a busy machine",
                             "`tuning-metr-la-week-cpu-2026-01-07.json`": "its front was not scored on the test split",
                             "`tuning-metr-la-week-cpu-2026-01-08.json`":
                                 "not timed on one CPU thread at batch 1 in eager fp32"}
    text = "\n".join(frontier_section(results, results.parent / "RESULTS.md"))
    assert "Tuning study fronts drawn on the latency panel" in text and "#0 stgru w32 2.20 ms 4.10" in text
    assert "Not drawn: `tuning-metr-la-week-cpu-2026-01-06.json` (timed on a busy machine)" in text


def test_a_screened_stgkd_distill_run_is_a_distilled_point_of_its_student_family(results):
    rows = _screen_rows()[:1]
    rows[0] = {**rows[0], "name": "kd-w32", "test": _h(4.3),
               "command": f"stgkd distill --dataset {WEEK} --teacher t.pt --student stgru --out runs/x/kd --epochs 30 "
                          "--test --seed 0 --no-progress --overwrite --hparams '{\"hidden\":32}'"}
    (results / "student-frontier-screen-cpu-2026-01-05-kd.json").write_text(json.dumps(
        {"schema": "stgkd-bench/1", "protocol": "frontier-screen", "rows": rows}))
    front = gather(results)
    kd = next(p for p in front.points + front.others if p.score.source.endswith("-kd.json"))
    assert (kd.score.family, kd.score.training, kd.score.width) == ("stgru", "distilled", 32)
    assert kd.mae60 == 4.3 and "`stgkd distill`" in kd.score.flags and "teacher `t.pt`" in kd.score.flags
    assert kd.timing is not None and kd.timing.b1_ms == 2.0  # the same student as the plain one: its timing
    plain = _point(front, "stgru w32 plain, seasonal day input")
    assert plain.score.training == "plain" and plain.mae60 == pytest.approx(4.1)


def _assert_readable(fig, front) -> None:
    """Each point with a figure on a panel is a marker there, where its figures put it; the numbers written
    beside markers are inside the panel and touch no other number, and every point of the students' front
    carries its number on the latency panel; no two legend entries overlap, and the legend is outside both
    panels."""
    from benchmarks.table.frontier import pareto
    from benchmarks.table.frontier_chart import LABEL_PAD

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    panels = zip(fig.axes, (lambda p: p.timing.b1_ms if p.timing else None,
                            lambda p: p.flops / 1e6 if p.flops else None))
    for k, (ax, x) in enumerate(panels):
        drawn = {line.get_gid(): line.get_xydata()[0] for line in ax.lines if line.get_marker() == "o"}
        for n, p in enumerate(front.points, 1):
            if x(p) is not None:
                (dx, dy), top = drawn[str(n)], ax.get_ylim()[1]
                assert dx == pytest.approx(x(p)) and (dy == pytest.approx(p.mae60) or top - 0.1 < dy < p.mae60)
        frame = ax.get_window_extent(renderer)
        labels = [(t.get_text(), t.get_window_extent(renderer)) for t in ax.texts]
        for i, (a, box) in enumerate(labels):
            assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, a
            assert {t for t, _ in labels} <= {str(n) for n in range(1, len(front.points) + 1)}
            for b, other in labels[i + 1:]:
                assert not box.overlaps(other), f"number {a} overlaps number {b}"
        if k == 0:  # the students' front is numbered first: a front point without its number sits where it
            # would touch a number already written
            written = dict(labels)
            for p in pareto([p for p in front.points if p.score.role == "student"]):
                n = str(front.points.index(p) + 1)
                if n not in written:
                    probe = ax.annotate(n, (p.timing.b1_ms, p.mae60), xytext=(3, 3), textcoords="offset points",
                                        fontsize=8)
                    box = probe.get_window_extent(renderer).expanded(*LABEL_PAD)
                    probe.remove()
                    assert any(box.overlaps(b.expanded(*LABEL_PAD)) for b in written.values()), p.label
        assert not fig.legends[0].get_window_extent(renderer).overlaps(frame)
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in fig.legends[0].get_texts()]
    for i, (a, box) in enumerate(boxes):
        for b, other in boxes[i + 1:]:
            assert not box.overlaps(other), f"{a!r} overlaps {b!r}"


def test_the_chart_draws_each_point_where_its_row_of_the_table_puts_it(results):
    from benchmarks.table.frontier_chart import figure

    front = gather(results)
    _assert_readable(figure(front), front)
    rows = [line for line in frontier_section(results, results.parent / "RESULTS.md") if line.startswith("| ")]
    for n, p in enumerate(front.points, 1):  # the key: row n of the table is the point drawn as n
        assert any(row.startswith(f"| {n} | {p.label} | ") for row in rows), p.label


def test_the_chart_of_the_records_in_the_repository_is_readable():
    """The chart README shows, drawn from the records it is drawn from (nothing is written)."""
    from benchmarks.fresh_clone import REPO
    from benchmarks.table.frontier_chart import figure

    records = REPO / "benchmarks" / "results"
    front = gather(records)
    assert front.charted, f"no charted record in {records}"  # the records are committed beside the chart
    _assert_readable(figure(front, study_fronts(records)[0]), front)


def test_a_score_without_a_parameter_count_takes_only_its_own_widths_timing(results):
    from dataclasses import replace

    from benchmarks.table.frontier import _latency_rows, _timing_for

    name = "latency-cpu-20260103-idle.json"
    timings = _latency_rows(name, json.loads((results / name).read_text()))
    score = _point(gather(results), "gcn-gru w32 plain").score
    assert _timing_for(replace(score, parameters=None), timings).model == "gcn-gru-h32"
    # a record that names the width but counts no parameters: never another width's timing
    assert _timing_for(replace(score, parameters=None, width=16), timings) is None
    assert _timing_for(replace(score, parameters=None, width=None), timings).model == "gcn-gru-h32"
