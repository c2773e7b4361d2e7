"""A seeded simulator of hourly counts on a bus network: boardings at stops, most of them ``0``.

:func:`generate_counts` simulates the stops of a bus network (:func:`route_network`: stops along a handful
of lines, linked stop to stop), a few stops busy and most rarely used, with service hours, weekday and
weekend profiles, route-wide bursts and closures. At its defaults it has the size and the figures of a real
network (:data:`stgkd.data.count_stats.BUS_NETWORK`, compared by ``python -m benchmarks.count_stats``); it is
the registered dataset ``synthetic-counts``, read with ``missing="nan"``: a ``0`` is a reading.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pandas as pd

from stgkd.data.core import TrafficData
from stgkd.data.synthetic import DEFAULT_START
from stgkd.errors import DataError

__all__ = ["generate_counts", "route_network"]

#: correlation of a day's level with the day before's in :func:`generate_counts`
DAY_PERSISTENCE = 0.7


def route_network(
    num_stops: int = 675,
    *,
    seed: int = 0,
    num_routes: int | None = None,
    transfers_per_route: float = 2.0,
    spacing_km: float = 0.4,
) -> nx.Graph:
    """Bus routes through a city: ``num_stops`` stops on a handful of lines, linked stop to stop along each
    line and by transfer links where two lines come close.

    Each route is a wandering line of stops about ``spacing_km`` apart (0.7 to 1.3 times that) whose heading
    drifts, laid so that one of its middle stops lies near downtown (the origin, where the routes cross, as
    radial lines do). Route lengths are uneven (at least 2 stops each); stops are numbered route by route, in
    order along the route. Links are the consecutive stops of each route (``kind="route"``) and transfers
    (``kind="transfer"``) between the closest two stops of two routes: first the transfers that join every
    route into one network (a minimum spanning tree over the routes by that distance), then the closest pairs
    of routes still unlinked, until there are ``transfers_per_route`` per route. ``N`` stops on ``R`` routes
    with ``X`` transfers have ``N - R + X`` links: 675 - 15 + 30 = 690 at the defaults, the count of the real
    network :data:`stgkd.data.count_stats.BUS_NETWORK` describes.

    Nodes carry ``stop_id``, ``pos`` (x, y in km), ``route`` and ``order`` (place along the route); edges
    carry ``length_km`` and ``kind``.

    Args:
        num_stops: stops (default: ``675``).
        seed: seed of every random choice (default: ``0``).
        num_routes: lines (default: one per 45 stops, rounded; at least 1 and at most ``num_stops // 2``).
        transfers_per_route: transfer links per route (default: ``2.0``); never fewer than the ``R - 1`` that
            connect the routes, never more than one per pair of routes.
        spacing_km: mean distance between consecutive stops (default: ``0.4``).
    """
    from scipy.spatial import cKDTree

    if num_stops < 2:
        raise DataError(f"route_network: num_stops must be at least 2, got {num_stops}")
    rng = np.random.default_rng([seed, 4])
    r = round(num_stops / 45) if num_routes is None else int(num_routes)
    r = min(max(1, r), num_stops // 2)
    sizes = 2 + rng.multinomial(num_stops - 2 * r, rng.dirichlet(np.full(r, 3.0)))
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    route = np.repeat(np.arange(r), sizes)
    order = np.arange(num_stops) - first[route]
    downtown_km = spacing_km * math.sqrt(num_stops) / 6
    pos = np.empty((num_stops, 2))
    for k, size in enumerate(sizes):
        heading = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0.0, 0.15, size))
        step = spacing_km * rng.uniform(0.7, 1.3, size)
        xy = np.cumsum(np.stack([step * np.cos(heading), step * np.sin(heading)], axis=1), axis=0)
        centre = xy[rng.integers(size // 4, size - size // 4)]
        pos[first[k] : first[k] + size] = xy - centre + rng.normal(0.0, downtown_km, 2)

    closest: dict[tuple[int, int], tuple[float, int, int]] = {}  # route pair -> (km, stop on a, stop on b)
    for a in range(r):
        tree = cKDTree(pos[first[a] : first[a] + sizes[a]])
        for b in range(a + 1, r):
            d, j = tree.query(pos[first[b] : first[b] + sizes[b]])
            i = int(np.argmin(d))
            closest[(a, b)] = (float(d[i]), int(first[a] + j[i]), int(first[b] + i))
    pairs = sorted(closest, key=lambda p: closest[p][0])
    parent = list(range(r))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    chosen = []
    for a, b in pairs:  # Kruskal: the shortest transfers that connect every route
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[ra] = rb
            chosen.append((a, b))
    want = min(len(pairs), max(r - 1, round(transfers_per_route * r)))
    spanning = set(chosen)
    chosen += [p for p in pairs if p not in spanning][: want - len(chosen)]

    g = nx.Graph(name="synthetic bus network", spacing_km=spacing_km, routes=r)
    for i in range(num_stops):
        g.add_node(i, stop_id=f"stop{i:04d}", pos=(float(pos[i, 0]), float(pos[i, 1])), route=int(route[i]),
                   order=int(order[i]))
    along = np.flatnonzero(route[:-1] == route[1:])
    for i in along:
        g.add_edge(int(i), int(i + 1), length_km=float(np.hypot(*(pos[i + 1] - pos[i]))), kind="route")
    for p in chosen:
        d, u, v = closest[p]
        g.add_edge(u, v, length_km=d, kind="transfer")
    return g


def _day_levels(rng: np.random.Generator, num_days: int, k: int, sd: float, persistence: float) -> np.ndarray:
    """``(num_days, k)`` levels around 1: ``exp`` of ``k`` AR(1) series over days (log-sd ``sd``, correlation
    ``persistence`` from one day to the next), each divided by its expected value."""
    eps = rng.standard_normal((num_days, k)) * sd
    log_level = eps.copy()  # day 0 drawn from the stationary law
    for d in range(1, num_days):
        log_level[d] = persistence * log_level[d - 1] + math.sqrt(1 - persistence**2) * eps[d]
    return np.exp(log_level - sd**2 / 2)


def _gauss(h: np.ndarray, centre: np.ndarray | float, width: np.ndarray | float) -> np.ndarray:
    return np.exp(-0.5 * np.square((h - centre) / width))


def _week_profiles(rng: np.random.Generator, hours: np.ndarray, dow: np.ndarray, route: np.ndarray,
                   busy: np.ndarray) -> np.ndarray:
    """``(S, N)`` expected boardings of each stop over one week of ``S`` steps (hour of day ``hours``, day of
    week ``dow``, Monday = 0), each stop's mean over the week 1; zero outside its route's service hours.

    ``busy`` ``(R,)`` ranks the routes in (0, 1), the quietest lowest: busy routes run earlier and later.
    """
    n, r = route.size, busy.size
    h = hours[:, None]
    # service: a service day runs from 04:00 to 04:00; buses from hour `first` to `last` (exclusive; 25 runs
    # into 00:xx), Saturdays an hour later, Sundays two hours later and an hour shorter
    first = 5 + (busy < 0.5) + rng.integers(0, 2, r)
    last = 22 + (busy > 0.25) + (busy > 0.7) + (busy >= 1 - 1 / r) * (r > 2)
    day_hour = np.where(hours < 4, hours + 24, hours)[:, None]
    service_dow = np.where(hours < 4, (dow - 1) % 7, dow)
    shift_first = np.select([service_dow == 5, service_dow == 6], [1, 2], 0)[:, None]
    shift_last = np.where(service_dow == 6, 1, 0)[:, None]
    service = (day_hour >= first[None, :] + shift_first) & (day_hour < last[None, :] - shift_last)  # (S, R)

    # weekdays: a morning peak (boardings at home), an evening peak (boardings at work, shops, school), a
    # midday plateau; Friday's evening heavier; weekends one broad midday bump
    morning = rng.beta(4.0, 4.0, n)
    am, pm = rng.normal(7.6, 0.35, n), rng.normal(17.0, 0.6, n)
    am_w, pm_w = rng.uniform(1.0, 1.4, n), rng.uniform(1.4, 2.0, n)
    midday = rng.uniform(0.4, 1.0, n)
    weekday = (1.1 * morning * _gauss(h, am, am_w) + (1 - morning) * _gauss(h, pm, pm_w)
               + midday * _gauss(h, 12.0, 2.5) + 0.08)
    friday = weekday + (1 - morning) * 0.25 * _gauss(h, 19.5, 2.0)
    weekend = _gauss(h, rng.normal(13.5, 0.8, n), rng.uniform(2.5, 4.0, n)) + 0.06
    saturday = rng.uniform(0.4, 0.9, n)
    sunday = saturday * rng.uniform(0.6, 0.9, n)
    d = dow[:, None]
    shape = np.select([d < 4, d == 4, d == 5], [weekday, 1.05 * friday, saturday * weekend], sunday * weekend)
    shape *= service[:, route]
    return shape / shape.mean(axis=0, keepdims=True)


def generate_counts(
    num_nodes: int = 675,
    num_days: int = 31,
    interval_minutes: int = 60,
    seed: int = 0,
    *,
    start: str = DEFAULT_START,
    median_rate: float = 0.14,
    rate_spread: float | tuple[float, float] = (1.8, 1.88),
    tail_rate: float = 14.0,
    dispersion: float = 0.5,
    zero_inflation: float = 0.2,
    day_variation: float = 0.05,
    burst_rate: float = 0.1,
    burst_size: float = 2.0,
    closure_rate: float = 0.002,
    missing_rate: float = 0.02,
    num_routes: int | None = None,
    transfers_per_route: float = 2.0,
    split: tuple[float, float, float] = (0.7, 0.1, 0.2),
    missing: str = "nan",
) -> TrafficData:
    r"""Simulate hourly boardings at the stops of a bus network: sparse, overdispersed counts on a route graph.

    At its defaults the series has the size and the figures of a real bus network (675 stops, 31 days hourly,
    690 links; :data:`stgkd.data.count_stats.BUS_NETWORK`): 80 % of the stop-hours ``0`` (all but none at
    night, a third at midday), variance / mean about 13-14 (real: 14.6), a few busy stops while half of the
    stops see fewer than four riders a day, the week the strongest season (correlation of the centred counts
    about 0.77 at 168 h, 0.72 at 1 h, 0.66 at 24 h). ``python -m benchmarks.count_stats`` prints every figure
    for seeds 0, 1 and 2 beside the real one: all within 20 % (benchmarks/results/count-stats-*.md); over
    seeds 0-19 only the maximum, the least stable figure, once strays further (+21 %). The default network
    takes about 0.05 s to make.

    The model, for stop ``n`` at step ``t``:

    * **Routes** (:func:`route_network`): the stops lie on a handful of bus lines (one per 45 stops), each
      linked to the next stop of its line and, where two lines come close, to a stop of the other line. The
      adjacency is that graph: weight 1 both ways for each link, no self-loops (as an unweighted edge list of
      stop links reads).
    * **Busy and quiet stops**: a stop's mean rate :math:`\lambda_n` (boardings per hour, over a week) is
      log-normal with median ``median_rate`` and log-sd ``rate_spread`` (below, above the median); above
      ``tail_rate`` the tail is thinned, :math:`\lambda \to \sqrt{\lambda \cdot \text{tail\_rate}}` (the
      busiest stops are fewer than a log-normal gives). Stops on busy routes and near downtown are busier: the
      distribution's quantiles at :math:`(i + 1/2) / N` go to the stops by the rank of that score, so the
      spread of the stops' means is the same for every seed.
    * **Service hours**: a route's buses run from 05:00-07:00 to 22:00-01:00 (busier routes longer), on
      Saturdays an hour later, on Sundays two hours later and an hour shorter; nights read ``0``.
    * **Weekday, weekend and weekly profiles**: on weekdays a morning peak, an evening peak (their balance by
      stop: stops where people live board in the morning, stops where they work or shop in the evening) and a
      midday plateau, Friday's evening busier; on Saturdays (at 40-90 % of a weekday's level) and Sundays
      (60-90 % of Saturday's) one broad midday bump. The profile repeats every week, scaled so that its mean is
      :math:`\lambda_n`.
    * **Day levels**: the network's (weather) and each route's (disruptions) level of the day, log-normal with
      log-sd ``day_variation``, correlated 0.7 from one day to the next (:data:`DAY_PERSISTENCE`).
    * **Route-correlated bursts**: ``burst_rate`` per stop per day, extra riders at a stop
      (``burst_size`` :math:`\cdot\, g \sqrt{\lambda_n}` an hour, :math:`g` gamma of mean 1, for 1-3 hours)
      that run along its route in one direction: each next stop 0.75 times weaker, an hour later every third
      stop.
    * **Overdispersed, zero-inflated counts**: a reading is Poisson of the rate times a gamma factor of mean 1,
      so its variance is ``(1 + dispersion)`` times its mean; a route runs no bus in a given hour with
      probability ``zero_inflation`` :math:`\cdot (1 - b_r)^2` (:math:`b_r = (k + 1/2) / R` for the route
      ranked :math:`k`-th quietest of :math:`R`; the rate is raised to keep the mean), and then all its stops
      read ``0``.
    * **Closures**: ``closure_rate`` per stop per day, 1-3 consecutive stops of a route closed for whole days
      (4 on average). A closed stop reads ``0``, not ``NaN``: nobody boarded there, and a count feed reports a
      closed stop's hours as 0, unannounced, so a forecaster meets closures as readings, as it would on a
      real feed (only counter outages leave cells empty). The busiest tenth of the stops is never closed:
      their riders move to a temporary stop counted under the same id.
    * **Missing readings**: counter outages of a few hours (6 on average) blank ``missing_rate`` of the cells
      (``NaN``). A ``0`` is a reading, so the convention is ``missing="nan"``.

    Args:
        num_nodes: stops (default: ``675``).
        num_days: days simulated (default: ``31``).
        interval_minutes: minutes per step; must divide an hour, or be whole hours that divide a day
            (default: ``60``). Rates are per hour and scale with the step.
        seed: seed of every random choice (default: ``0``).
        start: first timestamp (default: ``"2024-01-01"``, a Monday, midnight).
        median_rate: median over the stops of the mean boardings per hour (default: ``0.14``).
        rate_spread: log-sd of the stops' mean rates below and above the median, or one for both (default:
            ``(1.8, 1.88)``).
        tail_rate: rate (per hour) above which the log-normal's tail is thinned (default: ``14.0``).
        dispersion: variance / mean - 1 of a reading given its rate (default: ``0.5``; ``0``: Poisson).
        zero_inflation: share of the hours without a bus on a route, before the factor :math:`(1 - b_r)^2`
            (default: ``0.2``).
        day_variation: log-sd of the network's and each route's day level (default: ``0.05``).
        burst_rate: bursts per stop per day (default: ``0.1``).
        burst_size: a burst's mean extra riders per hour, in units of the square root of the stop's rate
            (default: ``2.0``).
        closure_rate: closures per stop per day (default: ``0.002``).
        missing_rate: expected share of readings lost to counter outages (default: ``0.02``).
        num_routes: bus lines (default: one per 45 stops; see :func:`route_network`).
        transfers_per_route: transfer links per route (default: ``2.0``; see :func:`route_network`).
        split: train/val/test fractions stored in the result (default: ``(0.7, 0.1, 0.2)``).
        missing: the convention the readings are read with (default: ``"nan"``: zeros are readings).

    Returns:
        :class:`TrafficData`: counts ``(T, N, 1)`` (channel ``"count"``, ``NaN`` where missing) with
        timestamps, stop ids ``stop0000``... (numbered route by route, in order along the route) and the
        route graph's adjacency.
    """
    if num_nodes < 2 or num_days < 1:
        raise DataError(f"generate_counts: need num_nodes >= 2 and num_days >= 1, got {num_nodes}, {num_days}")
    if interval_minutes < 1 or 1440 % interval_minutes or (interval_minutes > 60 and interval_minutes % 60):
        raise DataError(f"generate_counts: interval_minutes must divide an hour, or be whole hours that divide a day, "
                        f"got {interval_minutes}")
    if not 0 <= missing_rate < 0.5 or not 0 <= zero_inflation < 1:
        raise DataError(f"generate_counts: need 0 <= missing_rate < 0.5 and 0 <= zero_inflation < 1, got "
                        f"{missing_rate} and {zero_inflation}")
    if min(dispersion, day_variation, burst_rate, burst_size, closure_rate) < 0:
        raise DataError("generate_counts: dispersion, day_variation, burst_rate, burst_size and closure_rate must be "
                        "non-negative")
    below, above = (rate_spread, rate_spread) if np.isscalar(rate_spread) else rate_spread
    if not 0 < median_rate < tail_rate or min(below, above) <= 0:
        raise DataError(f"generate_counts: need 0 < median_rate < tail_rate and rate_spread > 0, got {median_rate}, "
                        f"{tail_rate} and {rate_spread}")
    from scipy.special import ndtri

    n = num_nodes
    per_day = 1440 // interval_minutes
    total = num_days * per_day
    per_hour = max(1, 60 // interval_minutes)
    g = route_network(n, seed=seed, num_routes=num_routes, transfers_per_route=transfers_per_route)
    route = np.array([g.nodes[i]["route"] for i in range(n)])
    pos = np.array([g.nodes[i]["pos"] for i in range(n)])
    num_r = int(route.max()) + 1
    adj = nx.to_numpy_array(g, nodelist=range(n), weight=None, dtype=np.float32)
    rng = np.random.default_rng([seed, 3])
    timestamps = pd.date_range(start, periods=total, freq=f"{interval_minutes}min")
    day = np.arange(total) // per_day
    week = pd.date_range(timestamps[0].normalize(), periods=7 * per_day, freq=f"{interval_minutes}min")
    offset = (timestamps[0] - week[0]) // pd.Timedelta(minutes=interval_minutes)
    week_step = (np.arange(total) + offset) % (7 * per_day)  # each step's place in the week of `week`

    # busyness: stops on busy routes and near downtown are busier; the log-normal's quantiles at (i + 1/2) / N
    # go to the stops by the rank of that score, so the spread of the stops' means is the same for every seed
    radius = np.hypot(pos[:, 0], pos[:, 1])
    central = (radius.mean() - radius) / max(float(radius.std()), 1e-9)
    score = 0.8 * rng.standard_normal(num_r)[route] + 0.5 * central + 0.6 * rng.standard_normal(n)
    u = (np.argsort(np.argsort(score)) + 0.5) / n
    z = ndtri(u)
    rate = median_rate * np.exp(np.where(z < 0, below, above) * z)  # boardings per hour, the stop's mean
    rate = np.where(rate > tail_rate, tail_rate * np.sqrt(rate / tail_rate), rate)  # the busiest: fewer
    route_level = np.bincount(route, np.log(rate), num_r) / np.bincount(route, minlength=num_r)
    busy = (np.argsort(np.argsort(route_level)) + 0.5) / num_r  # the routes' ranks: near 0 quietest, near 1 busiest
    skip = zero_inflation * (1 - busy) ** 2  # share of a route's hours without a bus

    hours = (week.hour + week.minute / 60).to_numpy(dtype=np.float64)
    profile = _week_profiles(rng, hours, ((np.arange(7 * per_day) // per_day) + week[0].day_of_week) % 7,
                             route, busy)
    lam = rate * profile[week_step] * (interval_minutes / 60) / (1 - skip[route])
    if day_variation > 0:  # the day's level: the whole network (weather) times the route (its disruptions)
        drift = _day_levels(rng, num_days, 1 + num_r, day_variation, DAY_PERSISTENCE)
        lam *= (drift[:, :1] * drift[:, 1:])[day][:, route]

    # bursts: extra riders at a stop for 1-3 hours that reach the next stops along its route, weaker each
    # stop and an hour later every third stop (a crowd after an event, a cancelled trip's riders); in
    # service hours only
    num_b = rng.poisson(burst_rate * n * num_days)
    if num_b:
        reach = rng.geometric(1 / 3, num_b)
        origin, t0 = rng.integers(0, n, num_b), rng.integers(0, total, num_b)
        direction = rng.choice([-1, 1], num_b)
        steps = rng.integers(1, 4, num_b) * per_hour
        size = burst_size * rng.gamma(4.0, 0.25, num_b) * (interval_minutes / 60)
        b = np.repeat(np.arange(num_b), reach)
        hop = np.arange(b.size) - np.repeat(np.cumsum(reach) - reach, reach)
        stop = origin[b] + direction[b] * hop
        ok = (stop >= 0) & (stop < n)
        ok[ok] &= route[stop[ok]] == route[origin[b[ok]]]
        b, hop, stop = b[ok], hop[ok], stop[ok]
        begin = np.minimum(t0[b] + (hop // 3) * per_hour, total)
        strength = size[b] * 0.75**hop * np.sqrt(rate[stop])
        boost = np.zeros((total + 1, n))
        np.add.at(boost, (begin, stop), strength)
        np.add.at(boost, (np.minimum(begin + steps[b], total), stop), -strength)
        boost = np.cumsum(boost[:-1], axis=0)
        lam += boost * (profile[week_step] > 0)

    # overdispersed counts: Poisson of the rate times a gamma factor, variance (1 + dispersion) x mean
    counts = rng.poisson(rng.gamma(lam / dispersion, dispersion) if dispersion > 0 else lam).astype(np.float32)
    if zero_inflation > 0:  # hours a route runs no bus (a thin timetable, a cancelled trip): every stop 0
        no_bus = rng.random((total // per_hour + 1, num_r)) < skip
        counts[no_bus[np.arange(total) // per_hour][:, route]] = 0
    # closures: 1-3 consecutive stops of a route closed for whole days, reading 0 (see the docstring)
    num_c = rng.poisson(closure_rate * n * num_days)
    movable = np.quantile(rate, 0.9)  # a busier stop moves to a temporary one that counts under its id
    for stop, first_day, days, stretch in zip(rng.integers(0, n, num_c), rng.integers(0, num_days, num_c),
                                              rng.geometric(1 / 4, num_c), rng.integers(1, 4, num_c)):
        closed = np.arange(stop, min(stop + stretch, n))
        closed = closed[(route[closed] == route[stop]) & (rate[closed] < movable)]
        counts[first_day * per_day : (first_day + days) * per_day, closed] = 0
    if missing_rate > 0:  # outages of a stop's counter, a few hours each
        mean_len = max(1.0, 6 * 60 / interval_minutes)
        num_out = rng.poisson(missing_rate * counts.size / mean_len)
        lengths = rng.geometric(1 / mean_len, num_out)
        starts, stops = rng.integers(0, total, num_out), rng.integers(0, n, num_out)
        for t, stop, steps in zip(starts, stops, lengths):
            counts[t : t + steps, stop] = np.nan
    return TrafficData(
        values=counts[:, :, None],
        adj=adj,
        sensor_ids=[g.nodes[i]["stop_id"] for i in range(n)],
        interval_minutes=interval_minutes,
        timestamps=timestamps,
        name="synthetic-counts",
        split=split,
        channel_names=["count"],
        source=[f"synthetic_counts(num_nodes={n}, days={num_days}, interval_minutes={interval_minutes}, seed={seed})"],
        missing=missing,
    )
