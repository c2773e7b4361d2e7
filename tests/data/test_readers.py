"""Readers: every layout on tiny files, every validation rule, and the real week of METR-LA."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stgkd.data.readers import (
    DataWarning,
    check_enough_steps,
    read_adj_pickle,
    read_dcrnn,
    read_dense_matrix,
    read_edge_list,
    read_generic,
    read_los_loop,
    read_pems,
)
from stgkd.errors import DataError

T, N = 48, 4
IDS = ["101", "102", "103", "104"]


def _values(t: int = T, n: int = N, c: int | None = None, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (t, n) if c is None else (t, n, c)
    return rng.uniform(20.0, 70.0, size=shape).round(3)


def _adj(n: int = N) -> np.ndarray:
    adj = np.eye(n, dtype=np.float32)
    for i in range(n - 1):
        adj[i, i + 1] = 0.5
    return adj


def write_pickle(path: Path, ids=IDS, adj=None) -> Path:
    adj = _adj(len(ids)) if adj is None else adj
    path.write_bytes(pickle.dumps([list(ids), {s: i for i, s in enumerate(ids)}, adj], protocol=2))
    return path


def write_h5(path: Path, values: np.ndarray, ids=IDS, index=None, key: str = "df") -> Path:
    index = pd.date_range("2012-03-01", periods=len(values), freq="5min") if index is None else index
    pd.DataFrame(values, index=index, columns=list(ids)).to_hdf(path, key=key, mode="w")
    return path


def write_dcrnn(folder: Path, values: np.ndarray | None = None, **kwargs) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    values = _values() if values is None else values
    return write_h5(folder / "data.h5", values, **kwargs), write_pickle(folder / "adj_mx.pkl")


# ----------------------------------------------------------------------------------------------
# DCRNN layout


def test_dcrnn_roundtrip(tmp_path):
    values = _values()
    h5, pkl = write_dcrnn(tmp_path, values)
    data = read_dcrnn(h5)  # adj_mx.pkl found beside it
    assert data.values.shape == (T, N, 1)
    np.testing.assert_allclose(data.values[..., 0], values.astype(np.float32))
    np.testing.assert_array_equal(data.adj, _adj())
    assert data.sensor_ids == IDS
    assert data.interval_minutes == 5
    assert data.timestamps[0] == pd.Timestamp("2012-03-01") and len(data.timestamps) == T
    assert data.source == [str(h5), str(pkl)]
    assert data.split == (0.7, 0.1, 0.2)


def test_dcrnn_reorders_columns_by_id_and_says_so(tmp_path):
    values = _values()
    shuffled = [3, 1, 0, 2]
    h5 = write_h5(tmp_path / "x.h5", values[:, shuffled], ids=[IDS[i] for i in shuffled])
    write_pickle(tmp_path / "adj_mx.pkl")
    with pytest.warns(DataWarning, match="reordered by sensor id"):
        data = read_dcrnn(h5)
    np.testing.assert_allclose(data.values[..., 0], values.astype(np.float32))  # back in graph order
    assert data.sensor_ids == IDS


def test_dcrnn_different_sensor_sets_raise(tmp_path):
    h5 = write_h5(tmp_path / "x.h5", _values(), ids=["101", "102", "103", "999"])
    pkl = write_pickle(tmp_path / "adj_mx.pkl")
    with pytest.raises(DataError, match=r"x\.h5 has 4 sensors but the graph .*adj_mx\.pkl.*'999'.*'104'"):
        read_dcrnn(h5, pkl)


def test_sensor_count_mismatch(tmp_path):
    h5 = write_h5(tmp_path / "x.h5", _values(n=3), ids=IDS[:3])
    pkl = write_pickle(tmp_path / "adj_mx.pkl")
    with pytest.raises(DataError, match="has 3 sensors but the graph .* has 4"):
        read_dcrnn(h5, pkl)
    values = tmp_path / "values.npy"
    np.save(values, _values(n=3))
    np.save(tmp_path / "adj.npy", _adj(4))
    with pytest.raises(DataError, match=r"values\.npy has 3 sensors but the graph .*adj\.npy has 4 nodes"):
        read_generic(values, tmp_path / "adj.npy")


def test_missing_files(tmp_path):
    with pytest.raises(DataError, match=r"nope\.h5: HDF5 readings file not found"):
        read_dcrnn(tmp_path / "nope.h5", tmp_path / "adj_mx.pkl")
    h5 = write_h5(tmp_path / "x.h5", _values())
    with pytest.raises(DataError, match="no adj_mx.pkl beside it"):
        read_dcrnn(h5)
    with pytest.raises(DataError, match=r"missing\.pkl: adjacency pickle not found"):
        read_dcrnn(h5, tmp_path / "missing.pkl")


def test_corrupt_and_truncated_hdf5(tmp_path):
    h5, pkl = write_dcrnn(tmp_path)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"this is not an HDF5 file" * 10)
    with pytest.raises(DataError, match=r"garbage\.h5: not a readable pandas HDF5 file"):
        read_dcrnn(garbage, pkl)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(h5.read_bytes()[: h5.stat().st_size // 2])
    with pytest.raises(DataError, match=r"truncated\.h5: not a readable pandas HDF5 file"):
        read_dcrnn(truncated, pkl)


def test_wrong_hdf5_key(tmp_path):
    h5 = write_h5(tmp_path / "x.h5", _values(), key="speed")
    pkl = write_pickle(tmp_path / "adj_mx.pkl")
    with pytest.raises(DataError, match=r"x\.h5: no key 'df' in this HDF5 file; keys: \['speed'\]"):
        read_dcrnn(h5, pkl)
    assert read_dcrnn(h5, pkl, key="speed").num_steps == T


def test_nan_becomes_missing_and_is_reported(tmp_path):
    values = _values()
    values[3, 1] = np.nan
    values[7, 2] = np.nan
    h5, _ = write_dcrnn(tmp_path, values)
    with pytest.warns(DataWarning, match=r"data\.h5: 2 NaN readings .* treated as missing"):
        data = read_dcrnn(h5)
    assert np.isnan(data.values[3, 1, 0]) and np.isnan(data.values[7, 2, 0])
    assert data.missing_fraction == pytest.approx(2 / (T * N))


def test_nan_written_in_csv_is_missing(tmp_path):
    speed = tmp_path / "los_speed.csv"
    np.savetxt(tmp_path / "los_adj.csv", _adj(), delimiter=",")
    rows = ["101,102,103,104"] + [f"{i},1,2,3" for i in range(1, T + 1)]
    rows[2], rows[3] = "NaN,1,2,3", "2,,2,nan"
    speed.write_text("\n".join(rows) + "\n")
    with pytest.warns(DataWarning, match="3 NaN readings"):
        data = read_los_loop(speed)
    assert np.isnan(data.values[1, 0, 0]) and np.isnan(data.values[2, 1, 0]) and np.isnan(data.values[2, 3, 0])
    assert int(np.isnan(data.values).sum()) == 3


def test_inf_is_an_error_with_its_count(tmp_path):
    values = _values()
    values[5, 0] = np.inf
    values[6, 3] = -np.inf
    h5, _ = write_dcrnn(tmp_path, values)
    with pytest.raises(DataError, match=r"data\.h5: values hold 2 infinite entries \(first at index \(5, 0\)\)"):
        read_dcrnn(h5)


def test_duplicate_timestamps(tmp_path):
    index = pd.date_range("2012-03-01", periods=T, freq="5min").tolist()
    index[10] = index[9]
    h5, _ = write_dcrnn(tmp_path, index=pd.DatetimeIndex(index))
    with pytest.raises(DataError, match=r"data\.h5: duplicate timestamp 2012-03-01 00:45:00"):
        read_dcrnn(h5)


def test_unordered_timestamps(tmp_path):
    index = pd.date_range("2012-03-01", periods=T, freq="5min").tolist()
    index[10], index[11] = index[11], index[10]
    h5, _ = write_dcrnn(tmp_path, index=pd.DatetimeIndex(index))
    with pytest.raises(DataError, match="not in increasing order: 2012-03-01 00:55:00 is followed by 2012-03-01 00:50:00"):
        read_dcrnn(h5)


def test_irregular_interval(tmp_path):
    index = pd.date_range("2012-03-01", periods=T, freq="5min") + pd.to_timedelta([0] * 20 + [2] * (T - 20), unit="min")
    h5, _ = write_dcrnn(tmp_path, index=index)
    with pytest.raises(DataError, match=r"data\.h5: irregular interval: .*0 days 00:07:00, not a multiple of the 5-minute step"):
        read_dcrnn(h5)


def test_gaps_error_keep_fill(tmp_path):
    values = _values()
    index = pd.date_range("2012-03-01", periods=T, freq="5min")
    index = index.where(np.arange(T) < 20, index + pd.Timedelta(minutes=15))  # 3 steps missing after row 19
    h5, _ = write_dcrnn(tmp_path, values, index=pd.DatetimeIndex(index))
    with pytest.raises(DataError, match="3 missing 5-minute steps in 1 gaps, the first 2012-03-01 01:35:00 -> 2012-03-01 01:55:00"):
        read_dcrnn(h5)
    kept = read_dcrnn(h5, gaps="keep")
    assert kept.num_steps == T and kept.timestamps.equals(pd.DatetimeIndex(index))
    with pytest.warns(DataWarning, match="inserted 3 missing 5-minute steps"):
        filled = read_dcrnn(h5, gaps="fill")
    assert filled.num_steps == T + 3
    assert np.isnan(filled.values[20:23]).all()  # inserted steps are missing readings
    np.testing.assert_allclose(filled.values[23:, :, 0], values[20:].astype(np.float32))


def test_too_few_steps(tmp_path):
    # 12+12 windows with a 0.7/0.1/0.2 split need 6 windows (DCRNN rounding): 29 steps.
    check_enough_steps(29, (0.7, 0.1, 0.2), "x")
    with pytest.raises(DataError, match=r"x: 28 steps are too few for 12\+12-step windows and a 0.7/0.1/0.2"):
        check_enough_steps(28, (0.7, 0.1, 0.2), "x")
    h5, _ = write_dcrnn(tmp_path, _values(t=20))
    with pytest.raises(DataError, match=r"data\.h5: 20 steps are too few"):
        read_dcrnn(h5)


# ----------------------------------------------------------------------------------------------
# adjacency files


def test_adj_pickle_validation(tmp_path):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"adj": 1}, protocol=2))
    with pytest.raises(DataError, match=r"bad\.pkl: expected DCRNN's \[sensor_ids, sensor_id_to_ind, adj_mx\]"):
        read_adj_pickle(bad)
    bad.write_bytes(pickle.dumps([IDS, {s: 3 - i for i, s in enumerate(IDS)}, _adj()], protocol=2))
    with pytest.raises(DataError, match="sensor_id_to_ind does not match"):
        read_adj_pickle(bad)
    write_pickle(bad, adj=np.ones((4, 3), dtype=np.float32))
    with pytest.raises(DataError, match=r"bad\.pkl: adjacency must be a square matrix, got shape \(4, 3\)"):
        read_adj_pickle(bad)
    negative = _adj()
    negative[0, 2] = -0.5
    write_pickle(bad, adj=negative)
    with pytest.raises(DataError, match=r"bad\.pkl: adjacency holds 1 negative weights"):
        read_adj_pickle(bad)
    write_pickle(bad, adj=_adj(5))
    with pytest.raises(DataError, match="4 sensor ids but the adjacency is 5x5"):
        read_adj_pickle(bad)


def test_dense_matrix_csv(tmp_path):
    path = tmp_path / "adj.csv"
    np.savetxt(path, _adj(), delimiter=",")
    np.testing.assert_array_equal(read_dense_matrix(path), _adj())
    np.savetxt(path, np.ones((3, 4)), delimiter=",")
    with pytest.raises(DataError, match=r"adj\.csv: adjacency must be a square matrix, got shape \(3, 4\)"):
        read_dense_matrix(path)
    np.savetxt(path, -np.eye(3), delimiter=",")
    with pytest.raises(DataError, match="3 negative weights"):
        read_dense_matrix(path)
    path.write_text("1,0,0\n0,1,x\n0,0,1\n")
    with pytest.raises(DataError, match=r"adj\.csv: non-numeric value 'x' in column 2, row 1"):
        read_dense_matrix(path)


def test_edge_list_weights_distances_and_errors(tmp_path):
    path = tmp_path / "edges.csv"
    path.write_text("source,target,weight\n101,102,0.5\n102,103,2\n103,101,1\n")
    adj = read_edge_list(path, IDS)
    expected = np.zeros((4, 4), dtype=np.float32)
    expected[0, 1], expected[1, 2], expected[2, 0] = 0.5, 2.0, 1.0
    np.testing.assert_array_equal(adj, expected)
    np.testing.assert_array_equal(read_edge_list(path, IDS, symmetric=True), np.maximum(expected, expected.T))

    # distances -> DCRNN Gaussian kernel, sigma = std of the listed distances
    path.write_text("from,to,cost\n0,1,1.0\n1,2,2.0\n2,3,3.0\n")
    with pytest.warns(DataWarning, match="weighs 2 of the 3 listed edges"):
        adj = read_edge_list(path, ["0", "1", "2", "3"])
    sigma = np.std([1.0, 2.0, 3.0])
    expected = np.zeros((4, 4))
    for (i, j), d in {(0, 1): 1.0, (1, 2): 2.0, (2, 3): 3.0}.items():
        w = np.exp(-((d / sigma) ** 2))
        expected[i, j] = w if w >= 0.1 else 0.0
    np.testing.assert_allclose(adj, expected, rtol=1e-6)
    assert adj[2, 3] == 0  # exp(-(3/0.816)^2) < 0.1: thresholded away

    path.write_text("source,target\n101,102\n101,555\n")
    with pytest.raises(DataError, match=r"edges\.csv: 1 node ids are not among the 4 sensors \(e\.g\. \['555'\]\)"):
        read_edge_list(path, IDS)
    path.write_text("source,target,weight\n101,102,1\n101,102,2\n")
    with pytest.raises(DataError, match="edge 101 -> 102 is listed twice with different values"):
        read_edge_list(path, IDS)
    path.write_text("source,target,distance\n101,102,-1\n")
    with pytest.raises(DataError, match=r"negative distance -1\.0 on row 0"):
        read_edge_list(path, IDS)
    path.write_text("a,b\n101,102\n")
    with pytest.raises(DataError, match="needs 'source,target'"):
        read_edge_list(path, IDS)


# ----------------------------------------------------------------------------------------------
# PEMS0x layout


def _write_pems(folder: Path, stem: str, values: np.ndarray, csv_text: str, id_map: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / f"{stem}.npz", data=values)
    (folder / f"{stem}.csv").write_text(csv_text)
    if id_map is not None:
        (folder / f"{stem}.txt").write_text("\n".join(id_map) + "\n")
    return folder / f"{stem}.npz"


def test_pems_layout_with_known_start(tmp_path):
    values = _values(c=3)
    npz = _write_pems(tmp_path, "PEMS04", values, "from,to,cost\n0,1,0.5\n1,2,1.0\n2,3,2.0\n3,0,4.0\n")
    with pytest.warns(DataWarning, match=r"PEMS04\.csv: .* weighs 1 of the 4 listed edges"):
        data = read_pems(npz)
    assert data.values.shape == (T, N, 3)
    np.testing.assert_allclose(data.values, values.astype(np.float32))
    assert data.channel_names == ["flow", "occupancy", "speed"]
    assert data.timestamps[0] == pd.Timestamp("2018-01-01 00:00") and data.timestamps[1] == pd.Timestamp("2018-01-01 00:05")
    assert data.split == (0.6, 0.2, 0.2)
    sigma = np.std([0.5, 1.0, 2.0, 4.0])
    expected = np.zeros((N, N))
    for (i, j), d in {(0, 1): 0.5, (1, 2): 1.0, (2, 3): 2.0}.items():
        expected[i, j] = np.exp(-((d / sigma) ** 2))  # 0.874, 0.584, 0.116; 3 -> 0 (4 km) falls below 0.1
    np.testing.assert_allclose(data.adj, expected, rtol=1e-6)  # directed as listed, no self loops
    assert data.sensor_ids == ["0", "1", "2", "3"]


def test_pems03_id_map(tmp_path):
    raw = ["317842", "318711", "318721", "315955"]
    npz = _write_pems(
        tmp_path, "PEMS03", _values(c=1),
        "from,to,distance\n317842,318711,0.872\n318721,315955,1.322\n318711,318721,0.233\n", id_map=raw,
    )
    data = read_pems(npz, sigma=1.0)
    assert data.sensor_ids == raw
    assert data.channel_names == ["flow"]
    assert data.timestamps[0] == pd.Timestamp("2018-09-01")
    expected = np.zeros((N, N))
    expected[0, 1], expected[2, 3], expected[1, 2] = np.exp(-(0.872**2)), np.exp(-(1.322**2)), np.exp(-(0.233**2))
    np.testing.assert_allclose(data.adj, expected, rtol=1e-6)


def test_pems_corrupt_and_wrong_key(tmp_path):
    npz = _write_pems(tmp_path, "PEMS08", _values(c=3), "from,to,cost\n0,1,1.0\n")
    with pytest.raises(DataError, match=r"PEMS08\.npz: no array 'flow' in this \.npz file; arrays: \['data'\]"):
        read_pems(npz, key="flow")
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.raises(DataError, match=r"PEMS08\.npz: not a readable \.npz file"):
        read_pems(npz)


# ----------------------------------------------------------------------------------------------
# Los-loop (T-GCN) layout


def test_los_loop_with_dense_csv_and_with_pickle(tmp_path):
    values = _values()
    speed = tmp_path / "los_speed.csv"
    pd.DataFrame(values, columns=IDS).to_csv(speed, index=False)
    np.savetxt(tmp_path / "los_adj.csv", _adj(), delimiter=",")
    data = read_los_loop(speed, start="2012-03-01")
    np.testing.assert_allclose(data.values[..., 0], values.astype(np.float32))
    assert data.sensor_ids == IDS and data.name == "los"
    assert data.timestamps[-1] == pd.Timestamp("2012-03-01") + pd.Timedelta(minutes=5 * (T - 1))
    assert read_los_loop(speed).timestamps is None

    (tmp_path / "los_adj.csv").unlink()
    write_pickle(tmp_path / "adj_mx.pkl")
    np.testing.assert_array_equal(read_los_loop(speed).adj, _adj())


def test_csv_non_numeric_and_truncated(tmp_path):
    speed = tmp_path / "los_speed.csv"
    np.savetxt(tmp_path / "los_adj.csv", _adj(), delimiter=",")
    lines = ["101,102,103,104"] + [f"{i},1,2,3" for i in range(1, T + 1)]
    lines[5] = "4,1,fast,3"
    speed.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"los_speed\.csv: non-numeric value 'fast' in column '103', row 4"):
        read_los_loop(speed)
    lines[5] = "4,1,2,3"
    speed.write_text("\n".join(lines) + "\n4,1")  # cut off mid-row
    with pytest.raises(DataError, match=r"los_speed\.csv: line 50 has 2 fields but the header has 4; the file is truncated"):
        read_los_loop(speed)


# ----------------------------------------------------------------------------------------------
# generic layout


def test_generic_csv_with_timestamps_and_edge_list(tmp_path):
    values = _values()
    frame = pd.DataFrame(values, columns=IDS)
    frame.insert(0, "timestamp", pd.date_range("2023-05-01", periods=T, freq="10min"))
    frame.to_csv(tmp_path / "values.csv", index=False)
    (tmp_path / "edges.csv").write_text("source,target,weight\n101,102,0.7\n104,101,0.2\n")
    data = read_generic(tmp_path / "values.csv", tmp_path / "edges.csv")
    assert data.interval_minutes == 10
    assert data.timestamps[0] == pd.Timestamp("2023-05-01")
    np.testing.assert_allclose(data.values[..., 0], values.astype(np.float32))
    assert data.adj[0, 1] == pytest.approx(0.7) and data.adj[3, 0] == pytest.approx(0.2)
    assert int((data.adj > 0).sum()) == 2


def test_generic_npz_three_channels_with_dense_npy(tmp_path):
    values = _values(c=2)
    stamps = pd.date_range("2023-05-01", periods=T, freq="5min").to_numpy()
    np.savez(tmp_path / "values.npz", data=values, timestamps=stamps, sensor_ids=np.array(IDS))
    np.save(tmp_path / "adjacency.npy", _adj())
    data = read_generic(tmp_path / "values.npz", tmp_path / "adjacency.npy", channel_names=["speed", "flow"])
    assert data.values.shape == (T, N, 2) and data.channel_names == ["speed", "flow"]
    assert data.sensor_ids == IDS and data.timestamps[0] == pd.Timestamp("2023-05-01")
    np.save(tmp_path / "bad.npy", np.ones((T, N, 2, 2)))
    with pytest.raises(DataError, match=r"bad\.npy: values must be \(T, N\) or \(T, N, C\)"):
        read_generic(tmp_path / "bad.npy", tmp_path / "adjacency.npy")


def test_start_conflicts_with_file_timestamps(tmp_path):
    h5 = write_h5(tmp_path / "values.h5", _values())
    np.save(tmp_path / "adj.npy", _adj())
    with pytest.raises(DataError, match="the file has timestamps; start= is only for files without them"):
        read_generic(h5, tmp_path / "adj.npy", start="2020-01-01")


# ----------------------------------------------------------------------------------------------
# the real week of METR-LA


@pytest.mark.realdata
def test_metr_la_week_both_layouts_agree(real_data_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # the real files need no fixing
        dcrnn = read_dcrnn(real_data_dir / "metr-la-week.h5", real_data_dir / "adj_mx.pkl")
        los = read_los_loop(real_data_dir / "los_speed.csv", real_data_dir / "adj_mx.pkl", start="2012-03-01")
    for data in (dcrnn, los):
        assert (data.num_steps, data.num_nodes, data.num_channels) == (2016, 207, 1)
        assert int(np.count_nonzero(data.adj)) == 1722
    np.testing.assert_array_equal(dcrnn.values, los.values)
    np.testing.assert_array_equal(dcrnn.adj, los.adj)
    assert dcrnn.sensor_ids == los.sensor_ids
    assert dcrnn.timestamps.equals(los.timestamps)
    assert dcrnn.timestamps[-1] == pd.Timestamp("2012-03-07 23:55")
    assert dcrnn.missing_fraction == 0.0


# ----------------------------------------------------------------------------------------------
# your own network: edge lists the kernel thins out, equal distances, repeated sensor ids


def test_kernel_that_drops_every_edge_warns_with_share_sigma_and_threshold(tmp_path):
    path = tmp_path / "edges.csv"  # a ring of roads of similar lengths: sigma (their std) is tiny
    path.write_text("source,target,distance\n101,102,1.00\n102,103,1.01\n103,104,1.02\n104,101,1.03\n")
    sigma = np.std([1.00, 1.01, 1.02, 1.03])
    with pytest.warns(DataWarning) as caught:
        adj = read_edge_list(path, IDS)
    assert not adj.any()
    message = str(caught[0].message)
    assert message.startswith(f"{path}: ")
    assert f"sigma {sigma:.4g} (the std of the listed distances)" in message
    assert "4 of the 4 listed edges (100%)" in message and "threshold 0.1" in message
    assert "keeps no edge between sensors" in message and "'weight' column" in message
    # the ways out it names keep them: a larger sigma, or a weight column
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        kept = read_edge_list(path, IDS, sigma=1.0)
        path.write_text("source,target,weight\n101,102,1\n102,103,1\n103,104,1\n104,101,1\n")
        weighted = read_edge_list(path, IDS)
    assert np.count_nonzero(kept) == 4 and np.count_nonzero(weighted) == 4


def test_kernel_that_drops_some_edges_says_how_many(tmp_path):
    path = tmp_path / "edges.csv"
    path.write_text("from,to,cost\n0,1,1.0\n1,2,2.0\n2,3,3.0\n")
    # sigma = std(1, 2, 3) = 0.816: exp(-(2/sigma)^2) = 0.0025 and exp(-(3/sigma)^2) fall under 0.1
    with pytest.warns(DataWarning, match=r"weighs 2 of the 3 listed edges \(66\.7%\) under the threshold 0\.1"):
        adj = read_edge_list(path, ["0", "1", "2", "3"])
    assert np.count_nonzero(adj) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        assert np.count_nonzero(read_edge_list(path, ["0", "1", "2", "3"], threshold=0.0)) == 3
        assert np.count_nonzero(read_edge_list(path, ["0", "1", "2", "3"], warn_dropped_edges=False)) == 1
    with pytest.raises(DataError, match=r"edges\.csv: threshold must be in \[0, 1\]"):
        read_edge_list(path, ["0", "1", "2", "3"], threshold=1.5)
    with pytest.raises(DataError, match=r"edges\.csv: sigma must be positive, got 0"):
        read_edge_list(path, ["0", "1", "2", "3"], sigma=0.0)


def test_equal_distances_weigh_every_edge_one_and_say_so(tmp_path):
    path = tmp_path / "edges.csv"
    path.write_text("source,target,distance\n101,102,2.5\n102,103,2.5\n103,104,2.5\n")
    with pytest.warns(DataWarning) as caught:
        adj = read_edge_list(path, IDS)
    expected = np.zeros((4, 4), dtype=np.float32)
    expected[0, 1] = expected[1, 2] = expected[2, 3] = 1.0
    np.testing.assert_array_equal(adj, expected)
    message = str(caught[0].message)
    assert message.startswith(f"{path}: every listed distance is 2.5") and "every listed edge weighs 1" in message
    assert "sigma=" in message
    # a sigma of one's own weighs them by the kernel
    np.testing.assert_allclose(read_edge_list(path, IDS, sigma=2.5), expected * np.exp(-1.0), rtol=1e-6)


def test_generic_values_with_a_repeated_sensor_id_is_an_error_naming_it(tmp_path):
    stamps = pd.date_range("2024-01-01", periods=T, freq="5min")
    frame = pd.DataFrame(_values(), columns=["101", "102", "103", "102"])
    frame.insert(0, "timestamp", stamps)
    frame.to_csv(tmp_path / "values.csv", index=False)  # written as is: 102 twice
    assert (tmp_path / "values.csv").read_text().splitlines()[0] == "timestamp,101,102,103,102"
    with pytest.raises(DataError, match=r"values\.csv: sensor id '102' is repeated \(columns 3 and 5\)"):
        read_generic(tmp_path / "values.csv", np.eye(4))
    np.savez(tmp_path / "values.npz", data=_values(), sensor_ids=np.array(["7", "8", "7", "9"]))
    with pytest.raises(DataError, match=r"values\.npz: sensor id '7' is repeated \(positions in 'sensor_ids' 1 and 3\)"):
        read_generic(tmp_path / "values.npz", np.eye(4))


def test_los_loop_speeds_with_a_repeated_sensor_id_is_an_error_naming_it(tmp_path):
    header = "101,102,101,104"
    rows = "\n".join(",".join(f"{v:.3f}" for v in row) for row in _values())
    (tmp_path / "los_speed.csv").write_text(header + "\n" + rows + "\n")
    with pytest.raises(DataError, match=r"los_speed\.csv: sensor id '101' is repeated \(columns 1 and 3\)"):
        read_los_loop(tmp_path / "los_speed.csv", np.eye(4), start="2024-01-01")
