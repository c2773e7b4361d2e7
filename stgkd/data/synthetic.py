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

The other kind of network, hourly counts at the stops of a bus network, is simulated by
:func:`stgkd.data.synthetic_counts.generate_counts`.
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

__all__ = ["generate", "road_network", "road_distances", "DEFAULT_START"]

DEFAULT_START = "2024-01-01"  # a Monday
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
