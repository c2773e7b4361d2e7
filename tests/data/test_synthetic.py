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


COUNTS = dict(num_nodes=8, num_days=14, num_routes=2)  # two weeks of two bus lines, Monday to Sunday twice


@pytest.fixture(scope="module")
def counts():
    from stgkd.data.synthetic_counts import generate_counts

    return generate_counts(**COUNTS, seed=0)


def test_counts_are_whole_non_negative_or_nan_and_reproducible(counts):
    from stgkd.data.synthetic_counts import generate_counts

    v = counts.values[..., 0]
    seen = np.isfinite(v)
    assert counts.values.shape == (14 * 24, 8, 1) and counts.interval_minutes == 60
    assert counts.missing == "nan" and counts.channel_names == ["count"] and counts.name == "synthetic-counts"
    assert np.array_equal(v[seen], np.round(v[seen])) and v[seen].min() == 0
    assert 0 < 1 - seen.mean() < 0.1  # counter outages are NaN
    again, other = generate_counts(**COUNTS, seed=0), generate_counts(**COUNTS, seed=1)
    np.testing.assert_array_equal(np.isnan(v), np.isnan(again.values[..., 0]))
    np.testing.assert_array_equal(v[seen], again.values[..., 0][seen])
    np.testing.assert_array_equal(counts.adj, again.adj)
    assert not np.array_equal(np.nan_to_num(v, nan=-1), np.nan_to_num(other.values[..., 0], nan=-1))


def test_counts_are_sparse_uneven_and_overdispersed(counts):
    from stgkd.data.count_stats import dispersion_index, zero_share

    v = counts.values[..., 0]
    assert 0.6 < zero_share(v) < 0.97  # mostly zeros, and a 0 is a reading
    means = np.sort(np.nanmean(v, axis=0))
    assert means[-1] > 10 * means[len(means) // 2]  # a busy stop among quiet ones
    assert dispersion_index(v) > 2  # far more spread than Poisson counts of one rate


def test_counts_have_service_hours_and_quiet_weekends(counts):
    v = counts.values[..., 0]
    hours = counts.timestamps.hour.to_numpy()
    assert np.nansum(v[(hours >= 1) & (hours < 5)]) == 0  # no bus from 01:00 to 04:59
    assert np.nanmean(v[(hours >= 7) & (hours < 19)]) > 0.3
    weekend = counts.timestamps.day_of_week.to_numpy() >= 5
    assert np.nanmean(v[weekend]) < 0.8 * np.nanmean(v[~weekend])
    weekdays = np.nanmean(v, axis=1).reshape(2, 7, 24)[:, :5].mean(axis=1)  # a weekday's hours, week by week
    assert np.corrcoef(weekdays[0], weekdays[1])[0, 1] > 0.8  # the profile repeats


def test_count_network_is_a_route_graph():
    from stgkd.data.synthetic_counts import generate_counts, route_network

    g = route_network(675, seed=0)  # the real network's size: 15 lines, 690 links
    assert g.graph["routes"] == 15 and g.number_of_edges() == 690 and nx.is_connected(g)
    kinds = [d["kind"] for _, _, d in g.edges(data=True)]
    assert kinds.count("transfer") == 30 and kinds.count("route") == 675 - 15
    for u, v, d in g.edges(data=True):
        if d["kind"] == "route":  # consecutive stops of one line
            assert g.nodes[u]["route"] == g.nodes[v]["route"] and abs(g.nodes[u]["order"] - g.nodes[v]["order"]) == 1
        else:
            assert g.nodes[u]["route"] != g.nodes[v]["route"]
    data = generate_counts(**COUNTS, seed=0)
    small = route_network(8, seed=0, num_routes=2)
    assert np.array_equal(data.adj, nx.to_numpy_array(small, nodelist=range(8), weight=None))  # 1 both ways
    assert np.array_equal(data.adj, data.adj.T) and np.diag(data.adj).sum() == 0
    assert int(data.adj.sum()) // 2 == 8 - 2 + 1  # 7 links along the two lines, 1 transfer


def test_closed_stops_read_zero_for_whole_days():
    from stgkd.data.synthetic_counts import generate_counts

    kwargs = dict(COUNTS, seed=0, missing_rate=0.0)
    open_ = generate_counts(**kwargs, closure_rate=0.0).values[..., 0]
    closed = generate_counts(**kwargs, closure_rate=0.2).values[..., 0]
    assert not np.isnan(closed).any()  # a closure is a reading of 0, not a missing value
    changed = open_ != closed
    assert changed.any() and (closed[changed] == 0).all()
    days = changed.reshape(14, 24, 8).any(axis=1)  # (day, stop) blocks a closure touched
    assert (closed.reshape(14, 24, 8)[np.broadcast_to(days[:, None, :], (14, 24, 8))] == 0).all()


def test_bursts_run_along_a_route():
    from stgkd.data.synthetic_counts import generate_counts

    kwargs = dict(num_nodes=8, num_days=14, num_routes=1, seed=0, missing_rate=0.0, dispersion=0.0,
                  zero_inflation=0.0, closure_rate=0.0, day_variation=0.0)
    calm = generate_counts(**kwargs, burst_rate=0.0).values[..., 0]
    busy = generate_counts(**kwargs, burst_rate=2.0, burst_size=4.0).values[..., 0]
    assert busy.sum() > 1.5 * calm.sum()  # bursts add riders
    extra = busy - calm  # Poisson noise apart (a different draw), the bursts: shared by neighbours on the line
    near = np.mean([np.corrcoef(extra[:, i], extra[:, i + 1])[0, 1] for i in range(7)])
    far = np.mean([np.corrcoef(extra[:, i], extra[:, i + 4])[0, 1] for i in range(4)])
    assert near > far + 0.1, (near, far)  # bursts confined to their stop give about 0 and 0


def test_the_defaults_match_the_real_network():
    """The promise of the defaults (python -m benchmarks.count_stats shows it for seeds 0, 1, 2): every figure
    of the real bus network within 20 % (one seed here; about 0.1 s)."""
    from stgkd.data.count_stats import BUS_NETWORK, count_statistics
    from stgkd.data.synthetic_counts import generate_counts

    data = generate_counts(seed=0)
    stats = count_statistics(data.values[..., 0], data.timestamps, data.adj).as_dict()
    off = {k: (stats[k], real) for k, real in BUS_NETWORK.items() if abs(stats[k] - real) > 0.2 * real}
    assert not off, off


def test_count_network_is_a_registered_dataset(isolated_data_root):
    from stgkd.data.datasets import load_dataset

    data = load_dataset("synthetic-counts", num_nodes=8, num_days=3, seed=1)
    assert data.name == "synthetic-counts" and data.values.shape == (72, 8, 1) and data.missing == "nan"
    calm = load_dataset("synthetic-counts", num_nodes=8, num_days=3, seed=1, burst_rate=0.0)
    busy = load_dataset("synthetic-counts", num_nodes=8, num_days=3, seed=1, burst_rate=2.0, burst_size=8.0)
    assert np.nansum(busy.values) > 1.5 * np.nansum(calm.values)  # bursts add riders
