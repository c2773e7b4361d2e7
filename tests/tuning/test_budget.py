"""``tuning.budget``: the study's latency budget from the teacher's CUDA-graph latency, or calibrated between the
default student and the widest students of the search space. The measuring is faked: what is under test is the
rule."""

from __future__ import annotations

import types

import pytest

import stgkd.latency
from stgkd.latency import random_graph
from stgkd.nn.registry import DEFAULT_STUDENT
from tuning.budget import budget_students, calibrate_budget
from tuning.space import load_space


def test_the_budget_students_are_the_reference_and_each_familys_widest():
    space = load_space(None)
    students = budget_students(space, 6)
    assert students["reference"]["name"] == DEFAULT_STUDENT and students["reference"]["hparams"] == {"hidden": 32}
    widest = {k: v for k, v in students.items() if k != "reference"}
    assert sorted(c["name"] for c in widest.values()) == sorted(space["family"].choices)
    for label, config in widest.items():
        assert config["hparams"]["hidden"] == space["hidden"].high and label.startswith(config["name"] + " hidden=")
        assert config["hparams"].get("rank", 0) <= 6  # a rank within the sensors


def _fake_speeds(monkeypatch, speeds):
    monkeypatch.setattr(stgkd.latency, "measure", lambda model, **kw: types.SimpleNamespace(
        median_ms=speeds[kw["name"]]))


def test_on_cuda_the_budget_is_a_tenth_of_the_teachers_cuda_graph_latency(monkeypatch):
    _fake_speeds(monkeypatch, {DEFAULT_STUDENT: 0.06, "gru": 0.2, "gcn-gru": 0.3, "dcgru": 0.4})
    space, adj = load_space(None), random_graph(6)
    cal = calibrate_budget(adj, space, device="cuda", mode="cuda-graph", teacher_ms=0.713)
    assert cal["budget_ms"] == pytest.approx(0.0713) and cal["source"] == "the latency part"
    assert cal["rule"].startswith("1/10 of graph-wavenet's CUDA-graph latency at batch 1, fp32 (0.713 ms")
    assert cal["reference"] == {"model": DEFAULT_STUDENT, "hidden": 32, "median_ms": 0.06, "within_budget": True}
    assert cal["teacher"]["median_ms"] == 0.713
    without = calibrate_budget(adj, space, device="cuda", mode="cuda-graph", teacher_ms=None)
    # (the fake times a family alike at every width: no budget above the reference excludes its widest)
    assert without["source"] == "calibrated here" and without["budget_ms"] == pytest.approx(1.05 * 0.06)
    assert "no CUDA-graph figure of the teacher from the latency part" in without["rule"]
    eager = calibrate_budget(adj, space, device="cuda", mode="eager", teacher_ms=0.713)
    assert eager["source"] == "calibrated here" and "the students are timed eagerly here" in eager["rule"]


def test_without_the_teachers_figure_the_budget_lies_between_the_reference_and_the_widest(monkeypatch):
    speeds = {DEFAULT_STUDENT: 0.1, "gru": 0.4, "gcn-gru": 0.9, "dcgru": 1.6}
    widest = {}

    def measure(model, **kw):  # the reference at width 32 is fast, every family's widest slower
        wide = model.config()["hparams"]["hidden"] > 32
        widest[kw["name"]] = wide
        return types.SimpleNamespace(median_ms=speeds[kw["name"]] * (4 if wide else 1))

    monkeypatch.setattr(stgkd.latency, "measure", measure)
    cal = calibrate_budget(random_graph(6), load_space(None), device="cpu", mode="eager", warmup=1, iters=1)
    fastest_wide = min(cal["widest"].values())
    assert cal["budget_ms"] == pytest.approx((0.1 * fastest_wide) ** 0.5) and cal["source"] == "calibrated here"
    assert cal["reference"]["within_budget"] and all(v > cal["budget_ms"] for v in cal["widest"].values())
    assert cal["rule"] == "geometric mean of the reference and the fastest widest student"
