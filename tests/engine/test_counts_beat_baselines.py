"""On a small hourly count network (most readings zero, daily and weekly profiles, bursts) the default
student trained with the recipe's defaults beats the best baseline (a table of per-stop medians by hour and
day of week) at every horizon: what the family defaults (its learning rate, yesterday's readings as input)
are for. At the 200-stop size, ``stgkd train --dataset synthetic-counts --model stgru --test``
(benchmarks/results/counts-cpu-2026-12-03.md) wins by 16 %."""

from __future__ import annotations

import pytest

from stgkd.data.synthetic_counts import generate_counts
from stgkd.engine import TrainConfig, train_model
from stgkd.engine.baselines import best_baselines


@pytest.mark.slow
def test_the_default_student_beats_the_best_baseline_on_counts(one_thread):
    data = generate_counts(num_nodes=8, num_days=28, seed=0)
    result = train_model(data, "stgru", None, config=TrainConfig(epochs=20, device="cpu", seed=0), progress=False,
                         evaluate_test=True, baselines=True)
    assert "seasonal_day" in result.data.input_features  # the family's default at an hourly interval
    best = best_baselines(result.baselines)
    assert best["avg"][0].startswith("historical median")
    for horizon, (name, mae) in best.items():
        assert result.test[horizon]["mae"] <= 0.95 * mae, (horizon, name, result.test[horizon]["mae"], mae)
