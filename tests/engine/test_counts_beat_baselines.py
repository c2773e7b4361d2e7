"""On a small hourly count network from the count simulator (most readings zero, a few busy stops, daily
and weekly profiles, route bursts, closures) the default student trained with the recipe's defaults beats
the best baseline (a table of per-stop medians, chosen per horizon on validation) at every horizon, and by
5 % over the 12 steps: what the family and interval-aware defaults (its learning rate, yesterday's readings
and the day of week as input) are for. At the simulator's full size, ``python -m benchmarks.screen
counts`` (benchmarks/results/counts-*.md) gives the figures with three seeds."""

from __future__ import annotations

import pytest

from stgkd.data.synthetic_counts import generate_counts
from stgkd.engine import TrainConfig, train_model
from stgkd.engine.baselines import best_baselines


@pytest.mark.slow
def test_the_default_student_beats_the_best_baseline_on_counts(one_thread):
    data = generate_counts(num_nodes=24, num_days=28, seed=0)
    result = train_model(data, "stgru", None, config=TrainConfig(epochs=20, device="cpu", seed=0), progress=False,
                         evaluate_test=True, baselines=True)
    features = result.data.input_features
    assert "seasonal_day" in features and "day_of_week" in features  # the defaults at an hourly interval
    best = best_baselines(result.baselines)
    assert best["avg"][0].startswith("historical median")
    for horizon, (name, mae) in best.items():
        assert result.test[horizon]["mae"] < mae, (horizon, name, result.test[horizon]["mae"], mae)
    assert result.test["avg"]["mae"] <= 0.95 * best["avg"][1]
