"""Aggregate benchmark JSON files over seeds and render ``benchmarks/RESULTS.md``.

One module per thing rendered:

* :mod:`~benchmarks.table.records`: loading the records, the rule of the main body
  (:func:`appendix_reason`), numbers (:func:`mean_spread`, :func:`fmt_pm`, :func:`power_law`) and headings;
* :mod:`~benchmarks.table.suites`: the accuracy suites of ``benchmarks.run`` (:func:`aggregate`) and the
  quoted published numbers;
* :mod:`~benchmarks.table.ablations`: the distillation ablations and "When distillation pays"
  (:func:`regime_section`);
* :mod:`~benchmarks.table.latency`: the cost studies (latency table, model timing, scaling);
* :mod:`~benchmarks.table.parts`: the parts of a ``python -m benchmarks.gpu`` run (run table, environment,
  tuning study);
* :mod:`~benchmarks.table.goals`: the goals computed from the records and "where we fall short";
* :mod:`~benchmarks.table.baselines`: the best baseline per horizon as a row of the test MAE tables, and the
  marks on the figures worse than it;
* :mod:`~benchmarks.table.frontier`: the student frontier on the METR-LA week gathered from the records
  (accuracy joined with idle one-thread CPU latency), and "which student to use";
  :mod:`~benchmarks.table.frontier_chart` draws its chart (with the tuning studies' Pareto fronts) and renders its
  section;
* :mod:`~benchmarks.table.screen`: the screens of ``benchmarks.screen`` (the count network, the teacher
  families), the setting chosen per model family on validation;
* :mod:`~benchmarks.table.page`: the whole page (:func:`render`, :func:`write_markdown`).

Nothing here measures anything.
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
