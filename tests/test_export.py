"""Export of a student to one self-contained file, checked in a fresh interpreter."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from stgkd.cli import main
from stgkd.errors import CheckpointError, ConfigError
from stgkd.export import export_student, file_kind, load_exported, read_checkpoint
from stgkd.nn.base import ForecastModel
from stgkd.nn.registry import MODELS, register_model

REPO = Path(__file__).resolve().parents[1]
N, T, H = 5, 4, 3


class TinyGraphStudent(ForecastModel):
    """Test double: per-node MLP over the window, one step of row-normalised graph mixing.

    Shapes: x (B, T, N, C) -> forecast (B, H, N).
    """

    role = "student"
    feature_names = ("hidden",)
    distill_feature = "hidden"

    def __init__(self, *, num_nodes, graph=None, in_steps=12, out_steps=12, in_channels=2, hidden: int = 6):
        super().__init__(num_nodes=num_nodes, in_steps=in_steps, out_steps=out_steps, in_channels=in_channels,
                         hidden=hidden)
        adj = torch.eye(num_nodes) if graph is None else torch.as_tensor(graph, dtype=torch.float32)
        adj = adj + torch.eye(num_nodes)
        self.register_buffer("support", adj / adj.sum(1, keepdim=True))
        self.inp = nn.Linear(in_steps * in_channels, hidden)
        self.out = nn.Linear(hidden, out_steps)

    def forward(self, x, return_features=False):
        """Shapes: x (B, T, N, C) -> (B, H, N); features {"hidden": (B, N, D)}."""
        b, t, n, c = x.shape
        h = torch.tanh(self.inp(x.permute(0, 2, 1, 3).reshape(b, n, t * c)))
        h = torch.matmul(self.support, h)
        y = self.out(h).transpose(1, 2)
        return (y, {"hidden": h}) if return_features else y


if "test-export-student" not in MODELS:
    register_model("test-export-student")(TinyGraphStudent)


def make_checkpoint(path: Path, *, features=("value", "time_of_day"), seed: int = 0) -> tuple[Path, TinyGraphStudent, dict]:
    torch.manual_seed(seed)
    graph = torch.tensor(np.random.default_rng(seed).uniform(0, 1, (N, N)) > 0.5, dtype=torch.float32)
    model = TinyGraphStudent(num_nodes=N, graph=graph, in_steps=T, out_steps=H, in_channels=len(features)).eval()
    model.registry_name = "test-export-student"
    payload = {
        "format": "stgkd/1",
        "role": "student",
        "model": model.config(),
        "state_dict": model.state_dict(),
        "graph": graph,
        "scaler": {"mean": 55.0, "std": 12.0},
        "data": {"name": "synthetic", "source": ["generated"], "split": [0.7, 0.1, 0.2], "in_steps": T,
                 "out_steps": H, "input_features": list(features), "sensor_ids": [f"s{i}" for i in range(N)],
                 "interval_minutes": 5},
        "metrics": {"test": {"avg": {"mae": 3.21}}},
        "epoch": 7,
        "distill": {"alpha": 0.5},
        "adapters": {"proj.weight": torch.randn(4, 6)},
    }
    torch.save(payload, path)
    return path, model, payload


def reference_forecast(model, values: np.ndarray, minutes: np.ndarray, mean=55.0, std=12.0, dow=None) -> np.ndarray:
    """By hand: mask NaN/0 -> 0 in scaled space, tod = minutes/1440, forward, inverse."""
    v = torch.tensor(values, dtype=torch.float32)
    miss = torch.isnan(v) | (v == 0)
    z = torch.where(miss, torch.zeros_like(v), (v - mean) / std)
    chans = [z, torch.tensor(minutes / 1440.0, dtype=torch.float32)[:, :, None].expand_as(z)]
    if dow is not None:
        chans.append(torch.tensor(dow / 7.0, dtype=torch.float32)[:, :, None].expand_as(z))
    with torch.no_grad():
        return (model(torch.stack(chans, -1)) * std + mean).numpy()


def sample_inputs(batch: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    values = rng.uniform(20, 70, (batch, T, N)).astype(np.float32)
    values[0, 1, 2] = 0.0
    values[-1, 0, 4] = np.nan
    # 2026-11-20 (a Friday) 07:40 local time + b hours, 5-minute steps
    base = np.datetime64("2026-11-20T07:40:00")
    stamps = np.array([[base + np.timedelta64(60 * b + 5 * k, "m") for k in range(T)] for b in range(batch)])
    secs = (stamps - np.datetime64("1970-01-01T00:00:00")).astype("timedelta64[s]").astype(np.int64)
    minutes = ((secs % 86400) / 60.0)
    return values, secs, minutes


def test_torchscript_export_matches_hand_computed_forecast(tmp_path):
    ckpt, model, payload = make_checkpoint(tmp_path / "best.pt")
    out = export_student(ckpt, tmp_path / "student.pt")
    assert file_kind(out) == "torchscript"
    module, meta, kind = load_exported(out)
    assert meta["sensor_ids"] == [f"s{i}" for i in range(N)]
    assert (meta["input_steps"], meta["horizon"], meta["interval_minutes"]) == (T, H, 5)
    assert meta["input_features"] == ["value", "time_of_day"]
    assert meta["dataset"]["name"] == "synthetic" and meta["metrics"]["test"]["avg"]["mae"] == 3.21
    values, secs, minutes = sample_inputs(3)
    got = module(torch.from_numpy(values), torch.from_numpy(secs)).numpy()
    want = reference_forecast(model, values, minutes)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    # graph baked in as a buffer, adapters left out
    names = dict(module.named_buffers())
    assert torch.equal(names["adjacency"], payload["graph"])
    assert not any("adapter" in k or "proj" in k for k in module.state_dict())


def test_day_of_week_feature_matches_training_encoding(tmp_path):
    ckpt, model, _ = make_checkpoint(tmp_path / "best.pt", features=("value", "time_of_day", "day_of_week"))
    module, _, _ = load_exported(export_student(ckpt, tmp_path / "student.pt"))
    values, secs, minutes = sample_inputs(2)
    # 2026-11-20 is a Friday: pandas dayofweek 4
    dow = np.full(minutes.shape, 4.0)
    got = module(torch.from_numpy(values), torch.from_numpy(secs)).numpy()
    np.testing.assert_allclose(got, reference_forecast(model, values, minutes, dow=dow), rtol=1e-5, atol=1e-4)


FRESH = r"""
import json, sys, torch
extra = {"metadata.json": ""}
m = torch.jit.load(sys.argv[1], _extra_files=extra)
inp = torch.load(sys.argv[2], weights_only=True)
out = m(inp["values"], inp["secs"])
from stgkd.forecaster import Forecaster
fc = Forecaster.load(sys.argv[1])
arr = fc.predict(inp["values"].numpy(), timestamps=inp["stamps"])
leaked = sorted(k for k in sys.modules if k.startswith(("stgkd.nn", "stgkd.engine", "stgkd.data", "stgkd.distill")))
torch.save({"out": out, "fc": torch.from_numpy(arr), "meta": json.loads(extra["metadata.json"]), "leaked": leaked}, sys.argv[3])
"""


def test_exported_file_loads_in_fresh_interpreter_without_training_code(tmp_path):
    ckpt, model, _ = make_checkpoint(tmp_path / "best.pt")
    out = export_student(ckpt, tmp_path / "student.pt")
    values, secs, minutes = sample_inputs(2)
    stamps = (secs.astype("datetime64[s]")).astype("datetime64[ns]")
    torch.save({"values": torch.from_numpy(values), "secs": torch.from_numpy(secs),
                "stamps": [str(s) for s in stamps.ravel()]}, tmp_path / "inp.pt")
    res_path = tmp_path / "res.pt"
    proc = subprocess.run([sys.executable, "-c", FRESH, str(out), str(tmp_path / "inp.pt"), str(res_path)],
                          cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = torch.load(res_path, weights_only=True)
    want = reference_forecast(model, values, minutes)
    np.testing.assert_allclose(res["out"].numpy(), want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(res["fc"].numpy(), want, rtol=1e-5, atol=1e-4)
    assert res["leaked"] == []
    assert res["meta"]["model"]["name"] == "test-export-student"


def test_torch_export_format_roundtrip(tmp_path):
    ckpt, model, _ = make_checkpoint(tmp_path / "best.pt")
    out = export_student(ckpt, tmp_path / "student.pt2", format="torch.export")
    assert file_kind(out) == "torch.export"
    module, meta, kind = load_exported(out)
    assert kind == "torch.export" and meta["horizon"] == H
    values, secs, minutes = sample_inputs(4)
    got = module(torch.from_numpy(values), torch.from_numpy(secs)).numpy()
    np.testing.assert_allclose(got, reference_forecast(model, values, minutes), rtol=1e-5, atol=1e-4)


def test_onnx_export_checked_with_onnxruntime(tmp_path):
    pytest.importorskip("onnx", reason="onnx not installed (optional export format)")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (optional export format)")
    ckpt, model, _ = make_checkpoint(tmp_path / "best.pt")
    out = export_student(ckpt, tmp_path / "student.onnx", format="onnx")
    sess = ort.InferenceSession(str(out))
    values, secs, minutes = sample_inputs(2)
    got = sess.run(None, {"values": values, "timestamps": secs})[0]
    np.testing.assert_allclose(got, reference_forecast(model, values, minutes), rtol=1e-4, atol=1e-3)
    meta = json.loads(sess.get_modelmeta().custom_metadata_map["stgkd_metadata"])
    assert meta["sensor_ids"] == [f"s{i}" for i in range(N)]


def test_onnx_without_package_is_a_config_error(tmp_path, monkeypatch):
    ckpt, _, _ = make_checkpoint(tmp_path / "best.pt")
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ConfigError, match="onnx"):
        export_student(ckpt, tmp_path / "s.onnx", format="onnx")
    assert not (tmp_path / "s.onnx").exists()


def test_bad_files_raise_checkpoint_error_naming_the_file(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pt"):
        export_student(junk, tmp_path / "s.pt")
    ckpt, _, _ = make_checkpoint(tmp_path / "best.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(ckpt.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        read_checkpoint(truncated)
    wrong = tmp_path / "wrong.pt"
    torch.save({"format": "other/9", "weights": torch.zeros(2)}, wrong)
    with pytest.raises(CheckpointError, match="wrong.pt.*not an stgkd checkpoint"):
        export_student(wrong, tmp_path / "s.pt")
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as fh:  # a torch file holding a pickled callable: refused, never run
        torch.save({"format": "stgkd/1", "hook": pickle.loads}, fh)
    with pytest.raises(CheckpointError, match="evil.pt.*refused"):
        read_checkpoint(evil)
    with pytest.raises(CheckpointError, match="missing.pt"):
        export_student(tmp_path / "missing.pt", tmp_path / "s.pt")
    with pytest.raises(ConfigError, match="format="):
        export_student(ckpt, tmp_path / "s.pt", format="tflite")
    with pytest.raises(CheckpointError, match="best.pt"):
        load_exported(ckpt)  # a checkpoint is not an exported file


def test_cli_export(tmp_path, capsys):
    ckpt, _, _ = make_checkpoint(tmp_path / "best.pt")
    assert main(["export", str(ckpt), "--out", str(tmp_path / "s.pt")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sensors"] == N and summary["horizon"] == H and summary["model"] == "test-export-student"
    assert main(["export", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x.pt")]) == 2
    assert "nope.pt" in capsys.readouterr().err
