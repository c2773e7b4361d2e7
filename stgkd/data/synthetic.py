"""A seeded traffic simulator on a road-like sensor network.

The network is a perturbed grid of two-way roads built with networkx: sensors sit at the
intersections (one sensor per node), every other east-west road is a freeway (65 mph limit), the
rest are arterials (45 mph) joined by north-south connectors (40 mph), some of which are missing.
Positions are in km; each directed edge carries its ``length_km`` (straight-line distance times a
detour factor), ``free_flow_kmh``, ``speed_limit`` (mph) and ``road``.

Speeds (mph) follow a daily and weekly free-flow profile, minus congestion ``c`` in [0, 1]:
``v = v_free * profile(t) * (1 - max_drop * c) + noise``. Congestion has two sources:

* rush hours at *bottlenecks* (one node in five): a morning and an evening bump whose
  onset, length and intensity vary by bottleneck and day (weekends light, Friday evening heavy),
  modulated by an AR(1) fluctuation;
* incidents at random nodes (``incident_rate`` per node per day) of random severity and duration.

Both travel *upstream* like a shockwave: congestion at node ``j`` at time ``t`` reaches node ``i``
(``d`` km upstream along the roads, ``i -> ... -> j``) at ``t + d / wave_speed_kmh`` with
strength ``exp(-d / decay_km)``, up to ``reach_km``. A node's future therefore shows first at its
downstream neighbours, which is what graph models can exploit and single-node models cannot.
Readings then get Gaussian noise and missing values, reported as ``0`` as METR-LA's detectors do
(``NaN`` in ``values`` under the default ``missing="zero"``): isolated dropouts, per-sensor outages of
5 min to 3 h and, rarely, network-wide outages.

The adjacency is DCRNN's: the thresholded Gaussian kernel of road (shortest-path) distances
between sensors, over pairs within ``adjacency_radius_km``.

Everything is vectorised over nodes (loops run over bottlenecks and incidents), so a METR-LA-size
series (34272 steps x 207 sensors) or a PEMS07-size one (28224 x 883) takes seconds.

:func:`generate_counts` simulates the other kind of network: hourly boardings at the stops of a bus network
(:func:`route_network`: stops along a handful of lines, linked stop to stop), most of them ``0``, a few stops
busy and most rarely used, with service hours, weekday and weekend profiles, route-wide bursts and closures. At
its defaults it has the size and the figures of a real network (:data:`stgkd.data.count_stats.BUS_NETWORK`);
it is the registered dataset ``synthetic-counts``, read with ``missing="nan"``: a ``0`` is a reading.
"""

from __future__ import annotations

import math
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.signal import lfilter
from scipy.sparse.csgraph import dijkstra

from stgkd.data.core import TrafficData
from stgkd.errors import DataError

__all__ = ["generate", "generate_counts", "road_network", "road_distances", "route_network", "DEFAULT_START"]

DEFAULT_START = "2024-01-01"  # a Monday
#: correlation of a day's level with the day before's in :func:`generate_counts`
DAY_PERSISTENCE = 0.7
KMH_PER_MPH = 1.609344
ROAD_CLASSES = {"freeway": 65.0, "arterial": 45.0, "connector": 40.0}  # speed limits, mph


def road_network(
    num_nodes: int = 64,
    *,
    seed: int = 0,
    spacing_km: float = 2.2,
    jitter: float = 0.3,
    connector_keep: float = 0.6,
    freeway_every: int = 2,
) -> nx.DiGraph:
    """A connected perturbed-grid road network of ``num_nodes`` sensors with two-way roads.

    Nodes ``0..N-1`` (row-major on a near-square grid; the last row may be partial) carry
    ``sensor_id``, ``pos`` (x, y in km), ``row``, ``col`` and ``road`` (class of their east-west
    road). Rows are east-west roads (every ``freeway_every``-th a freeway); north-south connectors
    are kept with probability ``connector_keep`` (at least one between adjacent rows).
    """
    if num_nodes < 2:
        raise DataError(f"road_network: num_nodes must be at least 2, got {num_nodes}")
    rng = np.random.default_rng([seed, 1])
    cols = max(2, math.ceil(math.sqrt(num_nodes)))
    rows = math.ceil(num_nodes / cols)
    idx = np.arange(num_nodes)
    r, c = idx // cols, idx % cols
    pos = np.stack([c, r], axis=1) * spacing_km + rng.uniform(-jitter, jitter, (num_nodes, 2)) * spacing_km
    road = np.where(r % freeway_every == 0, "freeway", "arterial")

    g = nx.DiGraph(name="synthetic road network", spacing_km=spacing_km)
    for i in range(num_nodes):
        g.add_node(i, sensor_id=f"S{i:05d}", pos=(float(pos[i, 0]), float(pos[i, 1])), row=int(r[i]),
                   col=int(c[i]), road=str(road[i]))
    # east-west roads: consecutive nodes of a row
    ew = idx[:-1][r[:-1] == r[1:]]
    pairs = [(int(i), int(i + 1), str(road[i])) for i in ew]
    # north-south connectors: node i to i + cols
    below = idx[idx + cols < num_nodes]
    keep = rng.random(below.size) < connector_keep
    for row in range(rows - 1):  # every pair of adjacent rows keeps at least one connector
        in_row = np.flatnonzero(r[below] == row)
        if in_row.size and not keep[in_row].any():
            keep[rng.choice(in_row)] = True
    pairs += [(int(i), int(i + cols), "connector") for i in below[keep]]
    detour = rng.uniform(1.05, 1.3, len(pairs))
    for (u, v, kind), f in zip(pairs, detour):
        length = float(np.hypot(*(pos[u] - pos[v])) * f)
        limit = ROAD_CLASSES[kind]
        attrs = dict(length_km=length, speed_limit=limit, free_flow_kmh=limit * KMH_PER_MPH, road=kind)
        g.add_edge(u, v, **attrs)
        g.add_edge(v, u, **attrs)
    return g


def _csgraph(g: nx.DiGraph) -> sp.csr_matrix:
    n = g.number_of_nodes()
    u, v, w = zip(*((a, b, d["length_km"]) for a, b, d in g.edges(data=True)))
    return sp.csr_matrix((np.asarray(w), (np.asarray(u), np.asarray(v))), shape=(n, n))


def road_distances(g: nx.DiGraph, limit_km: float, *, chunk: int = 512) -> sp.coo_matrix:
    """Shortest road distances ``d[i, j]`` (path ``i -> ... -> j``) up to ``limit_km``, sparse.

    The diagonal (``d[i, i] = 0``) is stored explicitly.
    """
    graph = _csgraph(g)
    n = graph.shape[0]
    rows, cols, vals = [], [], []
    for start in range(0, n, chunk):
        src = np.arange(start, min(start + chunk, n))
        d = dijkstra(graph, directed=True, indices=src, limit=limit_km)
        i, j = np.nonzero(np.isfinite(d))
        rows.append(src[i])
        cols.append(j)
        vals.append(d[i, j])
    return sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def _kernel_adjacency(dist: sp.coo_matrix, threshold: float = 0.1) -> np.ndarray:
    """:func:`stgkd.data.graph.gaussian_kernel_adjacency` of a sparse distance matrix whose absent
    entries are ``inf`` (same result, without an ``(N, N)`` float64 temporary)."""
    n = dist.shape[0]
    sigma = float(np.std(dist.data))
    w = np.exp(-np.square(dist.data / sigma))
    keep = w >= threshold
    adj = np.zeros((n, n), dtype=np.float32)
    adj[dist.row[keep], dist.col[keep]] = w[keep]
    return adj


def _bump(minutes: np.ndarray, on: np.ndarray, off: np.ndarray, width: float) -> np.ndarray:
    """Smooth 0-1 window from ``on`` to ``off`` (minutes), logistic flanks of ``width`` minutes."""
    with np.errstate(over="ignore"):
        return 1.0 / ((1.0 + np.exp(-(minutes - on) / width)) * (1.0 + np.exp(-(off - minutes) / width)))


def _rush_sources(rng: np.random.Generator, minutes: np.ndarray, day: np.ndarray, first_weekday: int,
                  num_days: int, b: int, interval: int, fluctuation: float,
                  fluctuation_minutes: float) -> np.ndarray:
    """``(T, B)`` congestion at each bottleneck: daily AM / PM bumps times an AR(1) fluctuation.

    ``day`` is the day index of each step, day 0 being weekday ``first_weekday`` (Monday = 0).
    """
    out = np.zeros((minutes.size, b), dtype=np.float64)
    day_factor = {
        "am": np.array([1.0, 1.0, 1.0, 1.0, 0.9, 0.25, 0.15]),
        "pm": np.array([1.0, 1.0, 1.0, 1.05, 1.15, 0.4, 0.3]),
    }
    for peak, (center, length) in {"am": (7.75 * 60, 130.0), "pm": (17.5 * 60, 170.0)}.items():
        base_on = center - length / 2 + rng.normal(0, 20, b)
        base_len = length * rng.uniform(0.7, 1.3, b)
        weight = rng.uniform(0.45, 1.0, b)
        on = base_on[None, :] + rng.normal(0, 15, (num_days, b))
        off = on + base_len[None, :] * rng.lognormal(0, 0.2, (num_days, b))
        level = np.clip(weight[None, :] * rng.lognormal(0, 0.25, (num_days, b)), 0, 1)
        level = level * day_factor[peak][(first_weekday + np.arange(num_days)) % 7][:, None]
        out = np.maximum(out, level[day] * _bump(minutes[:, None], on[day], off[day], 12.0))
    phi = math.exp(-interval / fluctuation_minutes)
    ar = lfilter([math.sqrt(1 - phi**2)], [1.0, -phi], rng.standard_normal(out.shape), axis=0)
    return np.clip(out * (1.0 + fluctuation * ar), 0.0, 1.0)


def _row(m: sp.csr_matrix, i: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = m.indptr[i], m.indptr[i + 1]
    return m.indices[lo:hi], m.data[lo:hi]


def _spread_upstream(c: np.ndarray, source: np.ndarray, nodes: np.ndarray, dist: np.ndarray, t0: int,
                     steps_per_km: float, decay_km: float, combine: str) -> None:
    """Add congestion ``source`` (starting at step ``t0``) to the upstream ``nodes`` of ``c``.

    ``c`` is node-major ``(N, T)``; node ``i`` at road distance ``dist_i`` receives
    ``a_i * source[t - t0 - k_i]`` with ``k_i = round(dist_i * steps_per_km)`` and
    ``a_i = exp(-dist_i / decay_km)``, combined by ``"max"`` or probabilistic ``"or"``.
    """
    total = c.shape[1]
    delay = np.rint(dist * steps_per_km).astype(np.int64)
    atten = np.exp(-dist / decay_km).astype(np.float32)
    source = source.astype(np.float32, copy=False)
    for k in np.unique(delay):
        begin = t0 + int(k)
        if begin >= total:
            continue
        end = min(total, begin + source.shape[0])
        sel = delay == k
        rows = nodes[sel]
        vals = atten[sel, None] * source[None, : end - begin]
        block = c[rows, begin:end]
        if combine == "max":
            np.maximum(block, vals, out=block)
        else:
            block += vals - block * vals
        c[rows, begin:end] = block


def generate(
    num_nodes: int = 64,
    num_days: int = 14,
    interval_minutes: int = 5,
    seed: int = 0,
    *,
    start: str = DEFAULT_START,
    num_steps: int | None = None,
    bottleneck_every: int = 5,
    wave_speed_kmh: float = 12.0,
    decay_km: float = 4.0,
    reach_km: float = 10.0,
    max_drop: float = 0.85,
    fluctuation: float = 0.5,
    fluctuation_minutes: float = 20.0,
    incident_rate: float = 0.02,
    noise_mph: float = 1.0,
    missing_rate: float = 0.04,
    adjacency_radius_km: float | None = None,
    split: tuple[float, float, float] = (0.7, 0.1, 0.2),
    network: dict[str, Any] | None = None,
    missing: str = "zero",
) -> tuple[TrafficData, nx.DiGraph]:
    """Simulate speeds on a synthetic road network (see the module docstring for the model).

    Args:
        num_nodes: sensors (default: ``64``).
        num_days: days simulated (default: ``14``).
        interval_minutes: minutes per step (default: ``5``).
        seed: seed of every random choice; equal seeds give equal arrays (default: ``0``).
        start: first timestamp (default: ``"2024-01-01"``, a Monday, midnight).
        num_steps: exact number of steps, overriding ``num_days`` (e.g. ``34272`` as METR-LA).
        bottleneck_every: one bottleneck per this many nodes (default: ``5``).
        wave_speed_kmh: speed at which congestion travels upstream (default: ``12.0``).
        decay_km: distance over which congestion weakens by ``e`` upstream (default: ``4.0``).
        reach_km: how far upstream congestion spreads at most (default: ``10.0``).
        max_drop: fraction of free-flow speed lost at full congestion (default: ``0.85``).
        fluctuation: size of the AR(1) modulation of rush-hour congestion (default: ``0.5``).
        fluctuation_minutes: correlation time of that modulation (default: ``20.0``).
        incident_rate: incidents per node per day (default: ``0.02``).
        noise_mph: std of the sensor noise (default: ``1.0``).
        missing_rate: expected fraction of readings the sensors fail to report, reported as ``0``
            as in METR-LA (default: ``0.04``).
        adjacency_radius_km: road distance beyond which sensors are unconnected in the kernel
            (default: 4.5 x the median road length).
        split: train/val/test fractions stored in the result (default: ``(0.7, 0.1, 0.2)``).
        network: extra keyword arguments of :func:`road_network`.
        missing: the convention the readings are read with (:mod:`stgkd.missing`); with
            ``"zero"`` the unreported readings are missing (``NaN`` in ``values``), with ``"nan"`` they
            count as readings of 0 mph (default: ``"zero"``).

    Returns:
        ``(TrafficData, networkx.DiGraph)``: speeds ``(T, N, 1)`` in mph (missing = ``NaN``) with
        timestamps, sensor ids and the kernel adjacency; the road graph whose node ``i`` is
        column ``i`` (node attribute ``sensor_id``), with bottlenecks in ``graph["bottlenecks"]``
        and the incidents in ``graph["incidents"]`` (``node``, ``start``, ``steps``, ``severity``).
    """
    if num_days < 1 and num_steps is None:
        raise DataError(f"generate: num_days must be positive, got {num_days}")
    if interval_minutes < 1 or 1440 % interval_minutes:
        raise DataError(f"generate: interval_minutes must divide a day, got {interval_minutes}")
    if not 0 <= missing_rate < 0.5:
        raise DataError(f"generate: missing_rate must be in [0, 0.5), got {missing_rate}")
    g = road_network(num_nodes, seed=seed, **(network or {}))
    n = num_nodes
    per_day = 1440 // interval_minutes
    total = int(num_steps) if num_steps is not None else num_days * per_day
    if total < 1:
        raise DataError(f"generate: num_steps must be positive, got {num_steps}")
    days = -(-total // per_day)
    timestamps = pd.date_range(start, periods=total, freq=f"{interval_minutes}min")
    rng = np.random.default_rng([seed, 2])

    lengths = np.array([d["length_km"] for _, _, d in g.edges(data=True)])
    radius = float(adjacency_radius_km or 4.5 * np.median(lengths))
    dist = road_distances(g, max(reach_km, radius)).tocsr()  # dist[i, j]: i upstream of j
    near = dist.tocoo()
    in_radius = near.data <= radius
    adj = _kernel_adjacency(sp.coo_matrix((near.data[in_radius], (near.row[in_radius], near.col[in_radius])),
                                          shape=(n, n)))
    upstream = dist.T.tocsr()  # row j: nodes i with a road path i -> j, and its length

    step = np.arange(total)
    minutes = (timestamps.hour * 60 + timestamps.minute).to_numpy(dtype=np.float64)
    day = step // per_day
    first_weekday = int(timestamps[0].day_of_week)
    weekday = (day + first_weekday) % 7
    steps_per_km = 60.0 / (wave_speed_kmh * interval_minutes)

    # congestion: rush hours at bottlenecks, spread upstream
    c = np.zeros((n, total), dtype=np.float32)  # node-major while simulating
    num_b = max(1, n // bottleneck_every)
    bottlenecks = np.sort(rng.choice(n, num_b, replace=False))
    rush = _rush_sources(rng, minutes, day, first_weekday, days, num_b, interval_minutes, fluctuation,
                         fluctuation_minutes)
    for k, b in enumerate(bottlenecks):
        nodes, dists = _row(upstream, int(b))
        _spread_upstream(c, rush[:, k], nodes, dists, 0, steps_per_km, decay_km, "max")
    del rush

    # incidents
    num_inc = rng.poisson(incident_rate * n * total / per_day)
    inc_nodes = rng.integers(0, n, num_inc)
    inc_start = rng.integers(0, total, num_inc)
    inc_steps = np.maximum(2, np.rint(rng.uniform(15, 150, num_inc) / interval_minutes)).astype(int)
    inc_sev = rng.uniform(0.4, 0.95, num_inc)
    recovery = max(1, 20 // interval_minutes)
    for node, t0, length, sev in zip(inc_nodes, inc_start, inc_steps, inc_sev):
        shape = np.concatenate([np.full(length, sev), sev * np.linspace(1, 0, recovery + 2)[1:-1]])
        nodes, dists = _row(upstream, int(node))
        _spread_upstream(c, shape, nodes, dists, int(t0), steps_per_km, decay_km, "or")

    # free-flow speeds with daily / weekly profile
    limits = np.array([ROAD_CLASSES[g.nodes[i]["road"]] for i in range(n)])
    v_free = (limits + 3.0 - rng.uniform(0, 6, n)).astype(np.float32)
    daytime = _bump(minutes, 6 * 60.0, 21 * 60.0, 45.0)
    profile = (1.0 - 0.04 * daytime + 0.015 * (weekday >= 5)).astype(np.float32)
    speed = c
    speed *= -max_drop
    speed += 1.0
    speed *= v_free[:, None]
    speed *= profile[None, :]
    speed += rng.standard_normal((n, total), dtype=np.float32) * np.float32(noise_mph)
    np.clip(speed, 3.0, 85.0, out=speed)
    speed = np.ascontiguousarray(speed.T)  # (T, N)
    del c

    _apply_missing(speed, rng, missing_rate, per_day)

    g.graph.update(
        bottlenecks=[int(b) for b in bottlenecks],
        incidents=[{"node": int(a), "start": int(s), "steps": int(k), "severity": float(v)}
                   for a, s, k, v in zip(inc_nodes, inc_start, inc_steps, inc_sev)],
        seed=seed,
        adjacency_radius_km=radius,
    )
    sensor_ids = [g.nodes[i]["sensor_id"] for i in range(n)]
    data = TrafficData(
        values=speed[:, :, None],
        adj=adj,
        sensor_ids=sensor_ids,
        interval_minutes=interval_minutes,
        timestamps=timestamps,
        name="synthetic",
        split=split,
        channel_names=["speed"],
        source=[f"synthetic(num_nodes={n}, steps={total}, interval_minutes={interval_minutes}, seed={seed})"],
        missing=missing,
    )
    return data, g


def _apply_missing(speed: np.ndarray, rng: np.random.Generator, rate: float, per_day: int) -> None:
    """Zero out about ``rate`` of the readings: 30% isolated dropouts, 60% per-sensor outages
    (1 step to 3 h, mostly short), 10% network-wide outages."""
    if rate <= 0:
        return
    total, n = speed.shape
    cells = total * n
    num_points = rng.binomial(cells, 0.3 * rate)
    flat = speed.reshape(-1)
    flat[rng.integers(0, cells, num_points)] = 0.0
    mean_len = 10.0
    num_out = rng.poisson(0.6 * rate * cells / mean_len)
    if num_out:
        lengths = np.minimum(rng.geometric(1 / mean_len, num_out), 36)
        starts = rng.integers(0, total, num_out)
        nodes = rng.integers(0, n, num_out)
        diff = np.zeros((total + 1, n), dtype=np.int32)
        np.add.at(diff, (starts, nodes), 1)
        np.add.at(diff, (np.minimum(starts + lengths, total), nodes), -1)
        out = np.cumsum(diff[:-1], axis=0, out=diff[:-1]) > 0
        speed[out] = 0.0
    num_net = rng.poisson(0.1 * rate * total / 12.0)
    for t0, length in zip(rng.integers(0, total, num_net), rng.integers(6, 19, num_net)):
        speed[t0 : t0 + length] = 0.0


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
