"""The cost bound that decides which network sizes the scaling study starts: hand-computed cases, brute
force against costs of the assumed form, and the launch-bound case a fitted exponent gets wrong."""

from __future__ import annotations

import math
import random

import pytest

from benchmarks.scaling import cost_bound
from benchmarks.table.records import power_law


def test_cost_bound_by_hand():
    assert cost_bound([], 100) is None
    assert cost_bound([(100, 3.0)], 200) == 12.0  # one point: nothing known of a fixed part, (200/100)^2
    assert cost_bound([(100, 3.0), (200, 5.0)], 200) == 5.0  # a measured size is its own bound
    # a pure N^2 cost (1 at 100, 4 at 200): the fixed part is 0 and the bound is exact
    assert cost_bound([(100, 1.0), (200, 4.0)], 400) == 16.0
    # a constant cost: all of it is the fixed part, which does not grow
    assert cost_bound([(100, 2.0), (200, 2.0)], 800) == 2.0
    # w0 = 2 at 207, w = 2.5 at 883: a >= (2 - 2.5 r) / (1 - r), r = 207/883; bound a + (2.5 - a)(2000/883)^2
    r = 207 / 883
    a = (2.0 - 2.5 * r) / (1 - r)
    assert cost_bound([(207, 2.0), (883, 2.5)], 2000) == pytest.approx(a + (2.5 - a) * (2000 / 883) ** 2)
    assert cost_bound([(207, 2.0), (883, 2.5)], 2000) == pytest.approx(5.1975, abs=1e-4)


def test_cost_bound_is_never_below_a_cost_of_the_assumed_form():
    """Brute force: costs a + b N + c N^2 with non-negative terms, measured at some sizes, never exceed the
    bound at a larger size; and the bound is reached (tight) by some such cost."""
    rng = random.Random(0)
    sizes = [207, 883, 2000, 8600]
    worst = math.inf
    for _ in range(2000):
        a, b, c = (rng.choice([0.0, rng.uniform(0, 3)]) for _ in range(3))
        b, c = b * 1e-3, c * 1e-6
        cost = [a + b * n + c * n * n for n in sizes]
        for k in range(1, len(sizes)):
            done = list(zip(sizes[:k], cost[:k]))
            for j in range(k, len(sizes)):
                bound = cost_bound(done, sizes[j])
                assert bound >= cost[j] * (1 - 1e-9), (a, b, c, done, sizes[j])
                worst = min(worst, bound / cost[j] if cost[j] else math.inf)
    assert worst == pytest.approx(1.0)


def test_a_launch_bound_start_does_not_hide_the_quadratic_cost():
    """2 s of kernel launches plus 1e-6 N^2 s of work: a power law fitted on 207 and 883 sees an exponent near
    0.2 and predicts well under half of the cost at 8,600; the bound does not."""
    def cost(n: float) -> float:
        return 2.0 + 1e-6 * n * n

    done = [(207, cost(207)), (883, cost(883))]
    _, k = power_law([n for n, _ in done], [w for _, w in done])
    fitted = done[-1][1] * (8600 / 883) ** max(1.0, k)  # what the study predicted before (exponent at least 1)
    assert k < 0.3 and fitted < 0.5 * cost(8600)
    assert cost_bound(done, 8600) >= cost(8600)
