"""The restricted unpickler: loads data pickles, refuses anything that could run code."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from stgkd.data.readers import read_adj_pickle
from stgkd.data.safe_pickle import safe_load, safe_loads
from stgkd.errors import DataError, UnsafePickleError


class _CreatesFile:
    """Unpickling this with the standard unpickler would call ``open(path, "w")``: a file appears."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


class _RunsShell:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_roundtrip_of_containers_numbers_and_arrays(tmp_path, protocol):
    payload = [
        ["773869", "767541"],
        {"773869": 0, "767541": 1},
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.float32(1.5),
        np.int64(3),
        np.array(["a", "bc"]),
        {1, 2},
        frozenset({3}),
        b"\x00\xffbytes",
        (1.0, 2 + 3j, None, True),
    ]
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    loaded = safe_load(path)
    assert loaded[0] == payload[0] and loaded[1] == payload[1]
    np.testing.assert_array_equal(loaded[2], payload[2])
    assert loaded[2].dtype == np.float32
    assert loaded[3] == np.float32(1.5) and type(loaded[3]) is np.float32
    assert loaded[4] == 3 and type(loaded[4]) is np.int64
    np.testing.assert_array_equal(loaded[5], payload[5])
    assert loaded[6:] == payload[6:]


def test_numpy_1x_module_names_load():
    # DCRNN's pickles (numpy 1.x) name numpy.core.multiarray; numpy 2.x writes numpy._core.multiarray
    data = pickle.dumps([np.arange(3, dtype=np.float32), np.float64(2.5)], protocol=2)
    assert b"numpy._core.multiarray\n_reconstruct" in data
    old_style = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    arr, scalar = safe_loads(old_style)
    np.testing.assert_array_equal(arr, np.arange(3, dtype=np.float32))
    assert scalar == 2.5 and type(scalar) is np.float64


@pytest.mark.parametrize("payload_cls, refused", [(_CreatesFile, "io.open|builtins.open"), (_RunsShell, "posix.system|nt.system")])
def test_code_running_pickle_is_refused_and_runs_nothing(tmp_path, payload_cls, refused):
    target = tmp_path / "pwned"
    evil = tmp_path / "adj_mx.pkl"
    evil.write_bytes(pickle.dumps([["1"], {"1": 0}, payload_cls(str(target))], protocol=2))
    with pytest.raises(UnsafePickleError, match=rf"adj_mx\.pkl: refused to load global ({refused})"):
        safe_load(evil)
    with pytest.raises(UnsafePickleError):
        read_adj_pickle(evil)
    assert not target.exists()


def test_codecs_encode_limited_to_text_encodings():
    # protocol 2 writes bytes as _codecs.encode(str, "latin1"); other codecs (zlib, base64, ...) are refused
    good = pickle.dumps(b"\x01\x02", protocol=2)
    assert safe_loads(good) == b"\x01\x02"
    evil = good.replace(b"latin1", b"zlib_c")
    with pytest.raises(DataError, match=r"evil\.pkl: .*_codecs\.encode with encoding 'zlib_c' is not allowed"):
        safe_loads(evil, source="evil.pkl")


def test_unknown_numpy_global_is_refused():
    data = pickle.dumps(np.load, protocol=2)  # a reference to a function is a global too
    with pytest.raises(UnsafePickleError, match=r"x\.pkl: refused to load global numpy\.load"):
        safe_loads(data, source="x.pkl")


def test_truncated_and_missing_files(tmp_path):
    path = tmp_path / "cut.pkl"
    full = pickle.dumps([["1", "2"], {"1": 0, "2": 1}, np.eye(2, dtype=np.float32)], protocol=2)
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(DataError, match=r"cut\.pkl: not a readable pickle") as info:
        safe_load(path)
    assert not isinstance(info.value, UnsafePickleError)
    with pytest.raises(DataError, match=r"absent\.pkl: file not found"):
        safe_load(tmp_path / "absent.pkl")


@pytest.mark.realdata
def test_real_adj_mx_loads(real_data_dir):
    ids, id_to_ind, adj = safe_load(real_data_dir / "adj_mx.pkl")
    assert len(ids) == 207 and id_to_ind[ids[5]] == 5
    assert adj.shape == (207, 207) and adj.dtype == np.float32
    assert int(np.count_nonzero(adj)) == 1722
    np.testing.assert_array_equal(np.diag(adj), 1.0)
