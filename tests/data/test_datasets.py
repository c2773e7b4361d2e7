"""Dataset registry, data root, layout detection and load_dataset."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import stgkd.data as sd
from stgkd.data.datasets import DATASETS, DatasetInfo, RemoteFile, data_root, detect_layout, get_dataset, load_dataset
from stgkd.errors import ConfigError, DataError

T, N = 48, 4
IDS = ["a1", "a2", "a3", "a4"]


def _write_dcrnn(folder: Path, h5_name: str = "whatever.h5", pkl_name: str = "adj_mx.pkl") -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    values = np.arange(T * N, dtype=np.float64).reshape(T, N) + 1.0
    index = pd.date_range("2012-03-01", periods=T, freq="5min")
    pd.DataFrame(values, index=index, columns=IDS).to_hdf(folder / h5_name, key="df", mode="w")
    adj = np.eye(N, dtype=np.float32)
    (folder / pkl_name).write_bytes(pickle.dumps([IDS, {s: i for i, s in enumerate(IDS)}, adj], protocol=2))
    return values


def test_registry_holds_the_standard_datasets():
    assert set(DATASETS.names()) >= {"metr-la", "pems-bay", "pems03", "pems04", "pems07", "pems08", "synthetic",
                                     "synthetic-counts"}
    released = [name for name in DATASETS.names() if not name.startswith("synthetic")]
    shapes = {name: (get_dataset(name).steps, get_dataset(name).nodes) for name in released}
    assert shapes == {
        "metr-la": (34272, 207),
        "pems-bay": (52116, 325),
        "pems03": (26208, 358),
        "pems04": (16992, 307),
        "pems07": (28224, 883),
        "pems08": (17856, 170),
    }
    assert get_dataset("METR_LA").split == (0.7, 0.1, 0.2)
    assert get_dataset("pems04").split == (0.6, 0.2, 0.2) and get_dataset("pems04").channels == 3
    assert get_dataset("synthetic-counts").interval_minutes == 60
    for name in released + ["synthetic"]:
        info = get_dataset(name)
        assert info.interval_minutes == 5
        for f in info.files:
            assert f.urls or f.manual, f"{name}/{f.name} has neither a URL nor directions"
            assert all(u.startswith("https://") for u in f.urls)
            assert f.sha256 is None or len(f.sha256) == 64


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("STGKD_DATA", raising=False)
    repo = Path(sd.__file__).resolve().parents[2]  # stgkd/data/__init__.py -> repo
    assert data_root() == repo / "datasets"  # running from the checkout
    monkeypatch.setenv("STGKD_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "arg") == tmp_path / "arg"


def test_missing_files_message(isolated_data_root):
    with pytest.raises(DataError) as info:
        load_dataset("metr-la")
    msg = str(info.value)
    assert f"metr-la: missing metr-la.h5, adj_mx.pkl in {isolated_data_root / 'metr-la'}" in msg
    assert "stgkd data fetch metr-la" in msg
    assert "drive.google.com" in msg
    assert "\n" not in msg


def test_registered_name_loads_and_checks_shape(isolated_data_root, tmp_path, monkeypatch):
    info = DatasetInfo(
        name="tiny-la", title="tiny", layout="dcrnn",
        files=(RemoteFile("tiny.h5", manual="nowhere"), RemoteFile("adj_mx.pkl", manual="nowhere")),
        steps=T, nodes=N, channels=1, interval_minutes=5, split=(0.7, 0.1, 0.2),
        time_range=None, source="test",
    )
    monkeypatch.setitem(DATASETS._items, "tiny-la", info)
    values = _write_dcrnn(isolated_data_root / "tiny-la", h5_name="tiny.h5")
    data = load_dataset("tiny-la")
    assert data.name == "tiny-la" and data.num_steps == T
    np.testing.assert_allclose(data.values[..., 0], values)
    # same files under an explicit root
    other = tmp_path / "other-root"
    _write_dcrnn(other / "tiny-la", h5_name="tiny.h5")
    assert load_dataset("tiny-la", root=other).source[0] == str(other / "tiny-la" / "tiny.h5")
    # a non-standard shape under a registered name is refused
    monkeypatch.setitem(DATASETS._items, "tiny-la", DatasetInfo(**{**info.__dict__, "steps": 34272}))
    with pytest.raises(DataError, match="holds 48 steps x 4 sensors x 1 channels, but the standard release has 34272"):
        load_dataset("tiny-la")


def test_synthetic_needs_no_files(isolated_data_root):
    from stgkd.data.synthetic import generate

    data = load_dataset("synthetic", num_nodes=8, num_days=1, seed=3)
    expected, _ = generate(num_nodes=8, num_days=1, seed=3)
    np.testing.assert_array_equal(data.values, expected.values)
    assert not any(isolated_data_root.iterdir())


def test_detect_layouts(tmp_path):
    dcrnn = tmp_path / "dcrnn"
    _write_dcrnn(dcrnn, h5_name="my-city.h5")  # any .h5 name + adj_mx.pkl
    assert detect_layout(dcrnn)[0] == "dcrnn"
    assert detect_layout(dcrnn / "my-city.h5") == ("dcrnn", {"h5_path": dcrnn / "my-city.h5", "adj_path": dcrnn / "adj_mx.pkl"})

    pems = tmp_path / "pems"
    pems.mkdir()
    np.savez(pems / "PEMS08.npz", data=np.ones((T, N, 3)))
    (pems / "PEMS08.csv").write_text("from,to,cost\n0,1,1.0\n")
    assert detect_layout(pems) == ("astgcn", {"npz_path": pems / "PEMS08.npz"})
    assert detect_layout(pems / "PEMS08.npz")[0] == "astgcn"

    los = tmp_path / "los"
    los.mkdir()
    (los / "sz_speed.csv").write_text("1,2\n3,4\n")
    assert detect_layout(los) == ("los-loop", {"speed_path": los / "sz_speed.csv"})

    generic = tmp_path / "generic"
    generic.mkdir()
    np.save(generic / "values.npy", np.ones((T, N)))
    np.save(generic / "adjacency.npy", np.eye(N))
    assert detect_layout(generic) == ("generic", {"values_path": generic / "values.npy", "graph": generic / "adjacency.npy"})

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match=r"empty: no supported dataset layout found \(it holds notes\.txt\)"):
        detect_layout(empty)
    with pytest.raises(DataError, match="no such file or folder, and not a registered dataset name"):
        detect_layout(tmp_path / "absent")


def test_load_by_path_and_kwargs(tmp_path):
    values = _write_dcrnn(tmp_path / "city", h5_name="city.h5")
    data = load_dataset(tmp_path / "city", split=(0.6, 0.2, 0.2))
    assert data.split == (0.6, 0.2, 0.2) and data.name == "city"
    np.testing.assert_allclose(data.values[..., 0], values)
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) \['colour'\] for read_dcrnn"):
        load_dataset(tmp_path / "city", colour="red")

    lonely = tmp_path / "lonely"
    lonely.mkdir()
    np.save(lonely / "speeds.npy", np.ones((T, N)))
    with pytest.raises(DataError, match="no graph given"):
        load_dataset(lonely / "speeds.npy")
    np.save(tmp_path / "g.npy", np.eye(N))
    assert load_dataset(lonely / "speeds.npy", graph=tmp_path / "g.npy").num_nodes == N


def test_package_exports():
    for name in ("TrafficData", "load_dataset", "prepare", "PreparedData", "WindowSplit", "Batch", "StandardScaler",
                 "read_dcrnn", "read_pems", "read_los_loop", "read_generic"):
        assert callable(getattr(sd, name)), name
    with pytest.raises(AttributeError):
        sd.not_a_name  # noqa: B018


@pytest.mark.realdata
def test_real_week_loads_by_folder_and_file(real_data_dir):
    by_folder = load_dataset(real_data_dir)  # .h5 + adj_mx.pkl -> DCRNN layout
    by_csv = load_dataset(real_data_dir / "los_speed.csv", start="2012-03-01")
    assert (by_folder.num_steps, by_folder.num_nodes) == (2016, 207)
    np.testing.assert_array_equal(by_folder.values, by_csv.values)
    assert int(np.count_nonzero(by_csv.adj)) == 1722
