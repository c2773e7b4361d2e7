"""Latency-constrained hyperparameter search for distilled students (``python -m tuning.search``).

Modules: :mod:`tuning.space` (the search space and its YAML/JSON overrides), :mod:`tuning.storage`
(study storage, worker sharing, resuming after a crash), :mod:`tuning.objective` (one trial: measure the
student's latency, then distil it with per-epoch pruning), :mod:`tuning.report` (report, plots, export)
and :mod:`tuning.search` (the command line).
"""
