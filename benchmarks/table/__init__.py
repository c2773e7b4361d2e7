"""Aggregate benchmark JSON files over seeds and render ``benchmarks/RESULTS.md``; nothing here measures anything.

One module per thing rendered: :mod:`~benchmarks.table.records` (loading the records, the rule of the main body
:func:`appendix_reason`, numbers, the generic :func:`~benchmarks.table.records.table` and section head, the best
baseline beside the models), :mod:`~benchmarks.table.suites` (the accuracy suites, :func:`aggregate`, and the
quoted published numbers), :mod:`~benchmarks.table.ablations` (the distillation ablations and "When distillation
pays"), :mod:`~benchmarks.table.latency` (the cost studies), :mod:`~benchmarks.table.parts` (the parts of a
``python -m benchmarks.gpu`` run), :mod:`~benchmarks.table.goals` (the goals and "where we fall short"),
:mod:`~benchmarks.table.frontier` and :mod:`~benchmarks.table.frontier_chart` (the student frontier on the
METR-LA week and its chart), :mod:`~benchmarks.table.screen` (the screens of ``benchmarks.screen``) and
:mod:`~benchmarks.table.page` (the whole page: its registry of sections, :func:`render`, :func:`write_markdown`).
"""

from benchmarks.table.ablations import ablation_rows, regime_section
from benchmarks.table.goals import goals
from benchmarks.table.page import render, write_markdown
from benchmarks.table.records import (BUSY, GOALS, MIN_PASSES, MIN_TIMED_CALLS, SCHEMA, appendix_reason, fmt_pm,
                                      load_records, mean_spread, power_law)
from benchmarks.table.suites import aggregate

__all__ = ["SCHEMA", "MIN_PASSES", "MIN_TIMED_CALLS", "BUSY", "GOALS", "mean_spread", "fmt_pm", "power_law",
           "load_records", "appendix_reason", "aggregate", "ablation_rows", "regime_section", "goals", "render",
           "write_markdown"]
