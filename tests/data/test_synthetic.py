import networkx as nx
import numpy as np
import pandas as pd
import pytest

from stgkd.data.graph import graph_info
from stgkd.data.synthetic import generate

SMALL = dict(num_nodes=20, num_days=4)


@pytest.fixture(scope="module")
def small():
    return generate(**SMALL, seed=0)


def test_shapes_metadata_and_graph(small):
    data, g = small
    assert data.values.shape == (4 * 288, 20, 1) and data.values.dtype == np.float32
    assert data.name == "synthetic" and data.split == (0.7, 0.1, 0.2) and data.interval_minutes == 5
    assert data.timestamps[0] == pd.Timestamp("2024-01-01") and data.timestamps[0].day_name() == "Monday"
    assert data.timestamps[1] - data.timestamps[0] == pd.Timedelta(minutes=5)
    assert isinstance(g, nx.DiGraph) and g.number_of_nodes() == 20 and nx.is_strongly_connected(g)
    assert [g.nodes[i]["sensor_id"] for i in range(20)] == data.sensor_ids
    for u, v, d in g.edges(data=True):
        assert g.has_edge(v, u)  # two-way roads
        assert d["length_km"] > 0 and d["free_flow_kmh"] > 0 and d["speed_limit"] in (40.0, 45.0, 65.0)
        assert d["length_km"] >= np.hypot(*np.subtract(g.nodes[u]["pos"], g.nodes[v]["pos"]))
    observed = data.values[data.values > 0]
    assert 3.0 <= observed.min() and observed.max() <= 85.0 and 35 < observed.mean() < 65


def test_adjacency_is_dcrnn_kernel_of_road_distances(small):
    data, g = small
    radius = g.graph["adjacency_radius_km"]
    # road distances by networkx's Dijkstra on the generated graph's edge lengths, within the radius
    n = g.number_of_nodes()
    dist = np.full((n, n), np.inf)
    for i, lengths in nx.all_pairs_dijkstra_path_length(g, cutoff=radius, weight="length_km"):
        for j, d in lengths.items():
            dist[i, j] = d
    assert np.isfinite(dist).sum() > 2 * g.number_of_edges()  # paths of several segments count, not only edges
    assert not np.isfinite(dist).all()  # and the radius cuts some pairs
    # DCRNN's kernel (gen_adj_mx.py): sigma = std of the finite distances, exp(-(d / sigma)^2), below 0.1 -> 0
    sigma = dist[np.isfinite(dist)].std()
    expected = np.exp(-np.square(dist / sigma))
    expected[expected < 0.1] = 0.0
    np.testing.assert_allclose(data.adj, expected, rtol=1e-6, atol=1e-7)
    info = graph_info(data.adj)
    assert info["weakly_connected_components"] == 1 and info["self_loops"] == 20
    assert 2 <= info["out_degree"]["mean"] <= 8


def test_deterministic_by_seed(small):
    data, _ = small
    again, _ = generate(**SMALL, seed=0)
    other, _ = generate(**SMALL, seed=1)
    np.testing.assert_array_equal(data.values, again.values)
    np.testing.assert_array_equal(data.adj, again.adj)
    assert not np.array_equal(data.values, other.values)


def test_missing_fraction_and_outages(small):
    data, _ = small
    assert 0.02 < data.missing_fraction < 0.07
    gone = np.isnan(data.values[:, :, 0])
    runs = gone[1:] & gone[:-1]  # consecutive missing steps: outages, not only isolated drops
    assert runs.sum() > 0.3 * gone.sum()
    clean, _ = generate(**SMALL, seed=0, missing_rate=0.0)
    assert clean.missing_fraction == 0.0


def _network_mean(data, days):
    v = data.values[:, :, 0]
    observed = np.isfinite(v).sum(axis=1)
    mean = np.where(observed > 0, np.nansum(v, axis=1) / np.maximum(observed, 1), np.nan)  # NaN in network outages
    return mean.reshape(days, 288)


def test_daily_periodicity_and_rush_hours(small):
    data, _ = small
    daily = _network_mean(data, 4)  # Monday..Thursday
    ok = np.isfinite(daily[0]) & np.isfinite(daily[1])
    assert np.corrcoef(daily[0][ok], daily[1][ok])[0, 1] > 0.6
    night = np.nanmean(daily[:, 2 * 12 : 4 * 12])  # 02:00-04:00
    morning = np.nanmean(daily[:, 7 * 12 + 6 : 8 * 12 + 6])  # 07:30-08:30
    evening = np.nanmean(daily[:, 17 * 12 : 18 * 12])
    assert morning < night - 3 and evening < night - 3
    week, _ = generate(num_nodes=12, num_days=7, seed=0)
    per_day = _network_mean(week, 7)
    weekend, weekdays = np.nanmean(per_day[5:, 17 * 12 : 18 * 12]), np.nanmean(per_day[:5, 17 * 12 : 18 * 12])
    assert weekend > weekdays + 2  # light weekends


def _lags(x, t_idx, lags):
    return np.stack([x[t_idx - k] for k in range(lags)], axis=-1)


def test_neighbours_improve_a_linear_forecast():
    """Least squares for node i at t+3: own 12 lags vs own + road neighbours' lags (held-out MAE)."""
    data, g = generate(num_nodes=20, num_days=5, seed=0)  # Monday to Friday
    v = data.values[:, :, 0].astype(np.float64)
    total = v.shape[0]
    horizon, lags = 3, 12
    t_idx = np.arange(lags - 1, total - horizon)
    split = int(0.7 * t_idx.size)
    own_err, nb_err = [], []
    for i in range(20):
        neighbours = sorted(set(g.predecessors(i)) | set(g.successors(i)))
        own = _lags(v[:, i], t_idx, lags)
        nb = np.concatenate([own] + [_lags(v[:, j], t_idx, lags) for j in neighbours], axis=1)
        y = v[t_idx + horizon, i]
        ok = np.isfinite(y) & np.isfinite(nb).all(axis=1)  # only fully observed samples
        tr, te = ok & (np.arange(t_idx.size) < split), ok & (np.arange(t_idx.size) >= split)
        for feats, errs in ((own, own_err), (nb, nb_err)):
            x = np.column_stack([feats, np.ones(len(feats))])
            coef, *_ = np.linalg.lstsq(x[tr], y[tr], rcond=None)
            errs.append(np.abs(x[te] @ coef - y[te]))
    own_mae = np.concatenate(own_err).mean()
    nb_mae = np.concatenate(nb_err).mean()
    assert nb_mae < 0.92 * own_mae, (own_mae, nb_mae)


def test_count_network_looks_like_a_sparse_count_series():
    from stgkd.data.synthetic import generate_counts

    data = generate_counts(num_nodes=200, num_days=28, seed=0)  # the registered defaults
    v = data.values[..., 0]
    seen = np.isfinite(v)
    assert data.interval_minutes == 60 and data.missing == "nan" and data.channel_names == ["count"]
    assert 0.75 < (v[seen] == 0).mean() < 0.85  # mostly zeros, and a 0 is a reading
    assert 0.005 < 1 - seen.mean() < 0.05  # outages are NaN
    assert np.array_equal(v[seen], np.round(v[seen])) and v[seen].min() == 0
    hours = data.timestamps.hour.to_numpy()
    assert np.nansum(v[(hours >= 2) & (hours < 4)]) == 0  # no service at night
    weekend = data.timestamps.day_of_week.to_numpy() >= 5
    assert np.nanmean(v[weekend]) < 0.9 * np.nanmean(v[~weekend])  # quieter weekends
    assert np.allclose(np.diag(data.adj), 1.0) and (data.adj > 0).sum() > 2 * data.num_nodes
    again = generate_counts(num_nodes=200, num_days=28, seed=0)
    np.testing.assert_array_equal(np.isnan(v), np.isnan(again.values[..., 0]))
    np.testing.assert_array_equal(v[seen], again.values[..., 0][seen])


def test_count_network_is_a_registered_dataset(isolated_data_root):
    from stgkd.data.datasets import load_dataset

    data = load_dataset("synthetic-counts", num_nodes=8, num_days=3, seed=1)
    assert data.name == "synthetic-counts" and data.values.shape == (72, 8, 1) and data.missing == "nan"
    calm = load_dataset("synthetic-counts", num_nodes=8, num_days=3, seed=1, burst_rate=0.0)
    busy = load_dataset("synthetic-counts", num_nodes=8, num_days=3, seed=1, burst_rate=2.0)
    assert np.nansum(busy.values) > 1.5 * np.nansum(calm.values)  # bursts add riders
