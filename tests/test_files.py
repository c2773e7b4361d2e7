"""Atomic writes and JSON values (stgkd.files)."""

import json
import math

import numpy as np
import pytest
import torch

from stgkd.files import atomic_write, to_jsonable


def test_atomic_write_bytes_text_and_a_writer(tmp_path):
    assert atomic_write(tmp_path / "sub" / "a.bin", b"\x00\x01") == tmp_path / "sub" / "a.bin"
    assert (tmp_path / "sub" / "a.bin").read_bytes() == b"\x00\x01"
    atomic_write(tmp_path / "b.txt", "é\n")
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "é\n"
    seen = []

    def writer(tmp):
        seen.append(tmp)
        tmp.write_text("x")

    atomic_write(tmp_path / "c.csv", writer)
    assert (tmp_path / "c.csv").read_text() == "x"
    assert seen[0].parent == tmp_path and seen[0].suffix == ".csv" and not seen[0].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt", "c.csv", "sub"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("cut short")

    with pytest.raises(RuntimeError, match="cut short"):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_to_jsonable():
    value = {1: (torch.tensor(2.5), torch.tensor([1, 2])), "n": np.int64(3), "f": np.float64(0.5), "p": (tmp := object())}
    got = to_jsonable(value)
    assert got == {"1": [2.5, [1, 2]], "n": 3, "f": 0.5, "p": str(tmp)}
    json.dumps(got)
    assert math.isnan(to_jsonable({"x": float("nan")})["x"])
    assert to_jsonable({"x": [float("nan"), torch.tensor(float("inf")), 1.0]}, finite=True) == {"x": [None, None, 1.0]}
