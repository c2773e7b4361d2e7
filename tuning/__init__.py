"""Latency-constrained hyperparameter search for distilled students (``python -m tuning.search``).

Modules: :mod:`tuning.space` (the search space and its YAML/JSON overrides), :mod:`tuning.storage`
(study storage, worker sharing, resuming after a crash, file locks), :mod:`tuning.objective` (one trial:
measure the student's latency, then distil it with per-epoch pruning), :mod:`tuning.samplers` (sampler and
pruner), :mod:`tuning.teacher` (the study's teacher, given or trained once), :mod:`tuning.progress` (log
lines and the study-wide progress bar), :mod:`tuning.report` (report and plots), :mod:`tuning.export` (the
best student exported, the front scored on test), :mod:`tuning.cli` (the flags) and :mod:`tuning.search`
(the command: one worker of a study).
"""
