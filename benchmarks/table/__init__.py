"""Aggregate the ``stgkd-bench/1`` records in ``benchmarks/results/`` and render ``benchmarks/RESULTS.md`` from
them (:func:`render`, :func:`write_markdown`); one module per thing rendered, nothing here measures anything."""

from benchmarks.table.ablations import ablation_rows, regime_section
from benchmarks.table.goals import goals
from benchmarks.table.page import render, write_markdown
from benchmarks.table.records import (BUSY, GOALS, MIN_PASSES, MIN_TIMED_CALLS, SCHEMA, appendix_reason, fmt_pm,
                                      load_records, mean_spread, power_law)
from benchmarks.table.suites import aggregate

__all__ = ["SCHEMA", "MIN_PASSES", "MIN_TIMED_CALLS", "BUSY", "GOALS", "mean_spread", "fmt_pm", "power_law",
           "load_records", "appendix_reason", "aggregate", "ablation_rows", "regime_section", "goals", "render",
           "write_markdown"]
