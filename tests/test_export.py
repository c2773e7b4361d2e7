"""Export of a student to one self-contained file, checked in a fresh interpreter."""

from __future__ import annotations

import json
import pickle
import posixpath
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from stgkd.cli import main
from stgkd.errors import CheckpointError, ConfigError
from stgkd.export import backend_of, export_student, file_kind, load_exported, read_checkpoint
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


def make_checkpoint(path: Path, *, features=("value", "time_of_day"), seed: int = 0,
                    missing: str | None = None) -> tuple[Path, TinyGraphStudent, dict]:
    """A student checkpoint; ``missing=None`` leaves out the convention, as files written before it was recorded."""
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
    if missing is not None:
        payload["data"]["missing"] = missing
    torch.save(payload, path)
    return path, model, payload


def reference_forecast(model, values: np.ndarray, minutes: np.ndarray, mean=55.0, std=12.0, dow=None,
                       sentinel: float | None = 0.0) -> np.ndarray:
    """By hand: mask NaN (and the sentinel, 0 by default) -> 0 in scaled space, tod = minutes/1440, forward,
    inverse."""
    v = torch.tensor(values, dtype=torch.float32)
    miss = torch.isnan(v) if sentinel is None else torch.isnan(v) | (v == sentinel)
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
    out = export_student(ckpt, tmp_path / "student.pt", format="torchscript")
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
import io, json, sys, torch
extra = {"metadata.json": ""}
if sys.argv[4] == "torchscript":
    m = torch.jit.load(sys.argv[1], _extra_files=extra)
else:
    with open(sys.argv[1], "rb") as fh:
        m = torch.export.load(io.BytesIO(fh.read()), extra_files=extra).module()
inp = torch.load(sys.argv[2], weights_only=True)
out = m(inp["values"], inp["secs"])
from stgkd.forecaster import Forecaster
fc = Forecaster.load(sys.argv[1])
arr = fc.predict(inp["values"].numpy(), timestamps=inp["stamps"])
leaked = sorted(k for k in sys.modules if k.startswith(("stgkd.nn", "stgkd.engine", "stgkd.data", "stgkd.distill")))
from stgkd.export.aoti import cpp_compiler
torch.save({"out": out, "fc": torch.from_numpy(arr), "meta": json.loads(extra["metadata.json"]), "leaked": leaked,
            "backend": fc.backend, "compiler": cpp_compiler() is not None}, sys.argv[3])
"""


@pytest.mark.parametrize("format", [pytest.param("torch.export", marks=pytest.mark.compile), "torchscript"])
def test_exported_file_loads_in_fresh_interpreter_without_training_code(format, tmp_path):
    ckpt, model, _ = make_checkpoint(tmp_path / "best.pt")
    out = export_student(ckpt, tmp_path / "student.pt", format=None if format == "torch.export" else format)
    assert file_kind(out) == format  # torch.export: what a plain export writes on the CPU
    values, secs, minutes = sample_inputs(2)
    stamps = (secs.astype("datetime64[s]")).astype("datetime64[ns]")
    torch.save({"values": torch.from_numpy(values), "secs": torch.from_numpy(secs),
                "stamps": [str(s) for s in stamps.ravel()]}, tmp_path / "inp.pt")
    res_path = tmp_path / "res.pt"
    proc = subprocess.run([sys.executable, "-c", FRESH, str(out), str(tmp_path / "inp.pt"), str(res_path), format],
                          cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                                             "STGKD_CACHE_DIR": str(tmp_path / "cache")},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = torch.load(res_path, weights_only=True)
    want = reference_forecast(model, values, minutes)
    np.testing.assert_allclose(res["out"].numpy(), want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(res["fc"].numpy(), want, rtol=1e-5, atol=1e-4)
    assert res["leaked"] == []
    assert res["meta"]["model"]["name"] == "test-export-student"
    # the plain export compiles in process where the child finds a C++ compiler, and runs uncompiled where not
    compiled = format == "torch.export" and res["compiler"]
    assert res["backend"] == ("aoti-cached" if compiled else backend_of(format, res["meta"]))


def test_torch_export_format_roundtrip(tmp_path):
    ckpt, model, _ = make_checkpoint(tmp_path / "best.pt")
    out = export_student(ckpt, tmp_path / "student.pt2", format="torch.export")
    assert file_kind(out) == "torch.export"
    module, meta, kind = load_exported(out)
    assert kind == "torch.export" and meta["horizon"] == H
    values, secs, minutes = sample_inputs(4)
    got = module(torch.from_numpy(values), torch.from_numpy(secs)).numpy()
    np.testing.assert_allclose(got, reference_forecast(model, values, minutes), rtol=1e-5, atol=1e-4)


def test_a_plain_export_is_the_torch_export_file_the_cpu_loader_compiles(tmp_path, monkeypatch):
    import stgkd.export.aoti as aoti
    from stgkd import Forecaster
    from stgkd.export.write import default_format

    ckpt, model, _ = make_checkpoint(tmp_path / "best.pt")
    out = export_student(ckpt, tmp_path / "student.pt")
    assert file_kind(out) == "torch.export"
    meta = load_exported(out)[1]
    assert (meta["export_format"], meta["cpu_program"]) == ("torch.export", "torch.compile")
    # int8 has one route (TorchScript); a CUDA export keeps the program whose CUDA graphs were measured
    assert default_format("cpu", "int8") == default_format("cuda", None) == "torchscript"
    assert file_kind(export_student(ckpt, tmp_path / "int8.pt", quantize="int8", checks=False)) == "torchscript"
    assert "cpu_program" not in load_exported(export_student(ckpt, tmp_path / "ts.pt", format="torchscript"))[1]
    assert Forecaster.load(out, compile=False).backend == "torch.export"
    assert Forecaster.load(ckpt).backend == "checkpoint"  # a training checkpoint runs as it is unless asked
    monkeypatch.setenv("STGKD_CACHE_DIR", str(tmp_path / "cache"))  # nothing compiled here before
    monkeypatch.setattr(aoti, "cpp_compiler", lambda: None)
    with pytest.warns(RuntimeWarning, match=r"student\.pt: .*needs a C\+\+ compiler.*runs uncompiled"):
        fc = Forecaster.load(out)
    assert fc.backend == "torch.export"
    values, secs, minutes = sample_inputs(2)
    got = fc.predict(values, timestamps=secs.astype("datetime64[s]"))
    np.testing.assert_allclose(got, reference_forecast(model, values, minutes), rtol=1e-5, atol=1e-4)


def test_a_torch_export_file_moves_to_another_device_whole(tmp_path):
    """A torch.export program names the device it was exported on (``zeros(..., device=cpu)``); loaded for
    another device every such argument moves with it. Shown on the meta device, which every machine has."""
    ckpt, _, _ = make_checkpoint(tmp_path / "best.pt")
    out = export_student(ckpt, tmp_path / "student.pt", format="torch.export")
    def devices(module):  # the devices the program's nodes name (zeros(..., device=cpu), metadata asserts)
        return {str(n.kwargs["device"]) for n in module.graph.nodes if n.kwargs.get("device") is not None}

    assert devices(load_exported(out)[0]) == {"cpu"}  # what .to() would leave behind
    module, _, _ = load_exported(out, device="meta")
    assert devices(module) == {"meta"}
    values, secs, _ = sample_inputs(2)
    got = module(torch.from_numpy(values).to("meta"), torch.from_numpy(secs).to("meta"))
    assert got.device.type == "meta" and tuple(got.shape) == (2, H, N)
    assert all(t.device.type == "meta" for t in module.state_dict().values())


def test_a_compile_nobody_asked_for_that_fails_warns_and_runs_uncompiled(tmp_path, monkeypatch):
    """A plain export compiles at load because the file asks for it: where compiling fails (a compiler that
    cannot build: missing headers, OpenMP), a warning names the file and the error and the file runs
    uncompiled; asked for with ``compile=True``, the error is raised."""
    import stgkd.export.aoti as aoti
    import stgkd.export.program_cache as cache
    from stgkd import Forecaster

    def cannot_build(program, inputs, out, where, *, atol, device):
        raise CheckpointError(f"{where}: compiling for the CPU failed (RuntimeError: C++ compile error)")

    ckpt, model, _ = make_checkpoint(tmp_path / "best.pt")
    out = export_student(ckpt, tmp_path / "student.pt")
    monkeypatch.setenv("STGKD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(aoti, "cpp_compiler", lambda: "g++")
    monkeypatch.setattr(cache, "compile_package", cannot_build)
    with pytest.warns(RuntimeWarning, match=r"student\.pt: compiling for the CPU failed \(RuntimeError: C\+\+ "
                                            r"compile error\).*runs uncompiled.*compile=False"):
        fc = Forecaster.load(out)
    assert fc.backend == "torch.export"
    values, secs, minutes = sample_inputs(2)
    np.testing.assert_allclose(fc.predict(values, timestamps=secs.astype("datetime64[s]")),
                               reference_forecast(model, values, minutes), rtol=1e-5, atol=1e-4)
    with pytest.raises(CheckpointError, match=r"student\.pt: compiling for the CPU failed"):
        Forecaster.load(out, compile=True)
    assert not list((tmp_path / "cache" / "programs").iterdir())  # nothing kept


class _WritesAMarker:
    """A pickle that, when loaded without weights_only, writes a file: what a crafted archive could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_a_torch_export_file_whose_pickles_could_run_code_is_refused_unread(tmp_path):
    import zipfile

    ckpt, _, _ = make_checkpoint(tmp_path / "best.pt")
    good = export_student(ckpt, tmp_path / "student.pt2", format="torch.export")
    # torch.export.load unpickles a weight its config marks use_pickle with weights_only=False
    marker = tmp_path / "ran.txt"
    bad = tmp_path / "crafted.pt2"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        config_name = next(n for n in src.namelist() if n.endswith("weights_config.json"))
        config = json.loads(src.read(config_name))
        fqn, entry = next(iter(config["config"].items()))
        entry["use_pickle"] = True
        payload = posixpath.join(posixpath.dirname(config_name), entry["path_name"])
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == config_name:
                data = json.dumps(config).encode()
            elif item.filename == payload:
                data = pickle.dumps(_WritesAMarker(marker))
            dst.writestr(item, data)
    with pytest.raises(CheckpointError, match=rf"crafted\.pt2: {re.escape(payload)} is a pickle that does not load "
                                              r"with weights_only=True"):
        load_exported(bad)
    assert not marker.exists()
    module, meta, kind = load_exported(good)  # what stgkd export writes passes the check
    assert kind == "torch.export" and meta["horizon"] == H


def test_onnx_export_checked_with_onnxruntime(tmp_path):
    import onnxruntime as ort  # the deploy extra, in dev: a missing package fails here

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


# --------------------------------------------------------------------------- CPU deployment: int8 and ONNX


@pytest.fixture(scope="module")
def gru_student(tmp_path_factory):
    """A gcn-gru student (GRU + linear + dense graph product) trained briefly on a 6-sensor network:
    ``(checkpoint, the series, fp32 TorchScript export)``."""
    from stgkd.data.synthetic import generate
    from stgkd.engine import TrainConfig, train_model

    root = tmp_path_factory.mktemp("gru-student")
    data, _ = generate(num_nodes=6, num_days=2, seed=0)
    train_model(data, "gcn-gru", root / "run", hparams={"hidden": 8, "graph_op": "dense"},
                config=TrainConfig(epochs=1, batch_size=32, limit_batches=2, device="cpu", seed=0),
                progress=False, log=False)
    ckpt = root / "run" / "best.pt"
    return ckpt, data, export_student(ckpt, root / "fp32.pt")


def deployment_inputs(meta: dict, batch: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(4)
    n, t = len(meta["sensor_ids"]), meta["input_steps"]
    values = 40.0 + 20.0 * torch.rand(batch, t, n, generator=gen)
    stamps = 1_704_100_000 + torch.arange(t, dtype=torch.int64)[None] * 300 + 3600 * torch.arange(batch)[:, None]
    return values, stamps


def test_int8_export_quantises_gru_and_linear_and_records_checks(gru_student, tmp_path):
    ckpt, data, fp32_path = gru_student
    out = export_student(ckpt, tmp_path / "int8.pt", quantize="int8", dataset=data, latency_iters=2)
    assert file_kind(out) == "torchscript"
    module, meta, _ = load_exported(out)
    assert meta["precision"] == "int8" and meta["backend"] == "torchscript-int8"
    assert {"encoder.gru", "graph_layers.0.static.lin", "head"} == set(meta["quantized_layers"])
    # the int8 program forecasts within 2 % of the scaler's std of the fp32 one
    fp32, fp32_meta, _ = load_exported(fp32_path)
    assert "deployment_checks" not in fp32_meta and fp32_meta["precision"] == "fp32"
    values, stamps = deployment_inputs(meta)
    got, want = module(values, stamps), fp32(values, stamps)
    diff = float((got - want).abs().max())
    assert 0 < diff < 0.02 * meta["scaler"]["std"]
    assert meta["int8_max_abs_diff_examples"] < 0.02 * meta["scaler"]["std"]

    checks = meta["deployment_checks"]
    assert checks["backend"] == "torchscript-int8" and checks["reference"] == "torchscript-fp32"
    acc = checks["accuracy"]
    assert acc["made"] and acc["split"] == "test" and acc["windows"] > 0
    for name in ("torchscript-fp32", "torchscript-int8"):
        assert set(acc["metrics"][name]) == {"15min", "30min", "60min", "avg"}
    ref, q = acc["metrics"]["torchscript-fp32"]["avg"]["mae"], acc["metrics"]["torchscript-int8"]["avg"]["mae"]
    assert acc["mae_change_pct"]["avg"] == pytest.approx(100 * (q - ref) / ref)
    assert abs(acc["mae_change_pct"]["avg"]) < 5
    # the fp32 reference scores what `stgkd evaluate` scores (the same windows and masked metrics)
    from stgkd.engine.evaluate import evaluate_checkpoint

    assert ref == pytest.approx(evaluate_checkpoint(ckpt, dataset=data, device="cpu").metrics["avg"]["mae"], rel=1e-4)
    lat = checks["latency"]
    assert lat["made"] and lat["threads"] == 1 and lat["iters"] == 2 and isinstance(lat["busy"], bool)
    assert len(lat["load_average"]["before"]) == 3 and lat["cores"] >= 1
    for name in ("torchscript-fp32", "torchscript-int8"):
        assert set(lat["results"][name]) == {"1", "64"}
        assert all(r["median_ms"] > 0 for r in lat["results"][name].values())
    for b in ("1", "64"):
        want_speedup = lat["results"]["torchscript-fp32"][b]["median_ms"] / lat["results"]["torchscript-int8"][b]["median_ms"]
        assert lat["speedup"][b] == pytest.approx(want_speedup)


def test_int8_file_loads_in_fresh_interpreter(gru_student, tmp_path):
    ckpt, data, _ = gru_student
    out = export_student(ckpt, tmp_path / "int8.pt", quantize="int8", int8_layers=["recurrent"], checks=False)
    code = ("import sys, torch; extra = {'metadata.json': ''}; m = torch.jit.load(sys.argv[1], _extra_files=extra); "
            "v = torch.full((2, 12, 6), 50.0); s = 1_704_100_000 + 300 * torch.arange(12).expand(2, 12); "
            "print(tuple(m(v, s).shape), 'int8' in extra['metadata.json'].decode())")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["(2,", "12,", "6)", "True"]


@pytest.mark.compile  # inductor compiles the checked program
def test_checks_of_a_plain_export_time_the_program_the_loader_runs(tmp_path):
    from stgkd.export.aoti import cpp_compiler

    if cpp_compiler() is None:  # without one the file is checked (and loaded) uncompiled: the other branch
        pytest.skip("no C++ compiler (g++ or $CXX): the plain export is checked uncompiled here")
    ckpt, _, _ = make_checkpoint(tmp_path / "best.pt")
    meta = load_exported(export_student(ckpt, tmp_path / "student.pt", checks=True, latency_iters=2))[1]
    checks = meta["deployment_checks"]
    assert checks["backend"] == "aoti-cached" and set(checks["latency"]["results"]) == {"torchscript-fp32",
                                                                                        "aoti-cached"}


def test_checks_of_a_plain_export_time_a_compiled_program_under_the_compiled_label(tmp_path, monkeypatch):
    """What the checks time as "aoti-cached" is the exported program compiled as ``Forecaster.load``
    compiles it (:func:`~stgkd.export.program_cache.compile_package`), and its timed calls run through the
    compiled program: never the uncompiled module under the compiled label. Fast: the compiler is a spy whose
    "library" runs the exported program eagerly (the real compile is the slow test above)."""
    import stgkd.export.aoti as aoti
    import stgkd.export.program_cache as cache
    import stgkd.latency as latency

    compiled, through_compiled = [], []

    def spy_compile(program, inputs, out, where, *, atol):
        assert atol == 1e-4  # FAITHFUL_ATOL
        compiled.append(program)
        return out

    class SpyLibrary:
        def __init__(self, path):
            self.module = compiled[-1].module()

        def __call__(self, values, timestamps):
            through_compiled.append(values.shape[0])
            return self.module(values, timestamps)

    timed: dict[str, list] = {}
    real_measure = latency.measure

    def spy_measure(model, **kwargs):  # model: the RawUnitsAdapter around the program timed as kwargs["name"]
        before, calls = len(through_compiled), []
        handle = model.register_forward_hook(lambda *_: calls.append(1))
        result = real_measure(model, **kwargs)
        handle.remove()
        timed.setdefault(kwargs["name"], []).append((model.module, len(calls), len(through_compiled) - before))
        return result

    monkeypatch.setattr(aoti, "cpp_compiler", lambda: "g++")
    monkeypatch.setattr(cache, "compile_package", spy_compile)
    monkeypatch.setattr(cache, "CachedProgram", SpyLibrary)
    monkeypatch.setattr(latency, "measure", spy_measure)
    ckpt, _, _ = make_checkpoint(tmp_path / "best.pt")
    meta = load_exported(export_student(ckpt, tmp_path / "student.pt", checks=True, latency_iters=2))[1]
    checks = meta["deployment_checks"]
    assert checks["backend"] == "aoti-cached" and set(timed) == {"torchscript-fp32", "aoti-cached"}
    assert len(compiled) == 1 and isinstance(compiled[0], torch.export.ExportedProgram)  # the file's program, once
    assert len(timed["aoti-cached"]) == len(checks["latency"]["results"]["aoti-cached"]) == 2  # batch 1, 64
    for program, calls, compiled_calls in timed["aoti-cached"]:
        assert isinstance(program, SpyLibrary)
        assert calls >= checks["latency"]["iters"] and compiled_calls == calls  # every one through the compiled fn
    assert all(compiled_calls == 0 for *_, compiled_calls in timed["torchscript-fp32"])  # the reference: not compiled


def test_int8_checks_without_the_data_say_why(tmp_path):
    ckpt, _, _ = make_checkpoint(tmp_path / "best.pt")  # dataset "synthetic", but 5 sensors s0..s4: not rebuildable
    out = export_student(ckpt, tmp_path / "int8.pt", quantize="int8", latency_iters=2)
    module, meta, _ = load_exported(out)
    assert meta["quantized_layers"] == ["inp", "out"]  # a student without a GRU: its linear layers
    acc = meta["deployment_checks"]["accuracy"]
    assert acc == {"made": False, "reason": acc["reason"]} and "could not be rebuilt" in acc["reason"]
    assert "different sensors" in acc["reason"]
    assert meta["deployment_checks"]["latency"]["made"]
    values, secs, minutes = sample_inputs(2)
    np.testing.assert_allclose(module(torch.from_numpy(values), torch.from_numpy(secs)).numpy(),
                               reference_forecast(make_checkpoint(tmp_path / "again.pt")[1], values, minutes),
                               atol=0.05 * 12.0)


def test_int8_refusals(tmp_path):
    ckpt, _, _ = make_checkpoint(tmp_path / "best.pt")
    with pytest.raises(ConfigError, match="format='torchscript'"):
        export_student(ckpt, tmp_path / "q.onnx", format="onnx", quantize="int8")
    with pytest.raises(ConfigError, match="quantize='int4'"):
        export_student(ckpt, tmp_path / "q.pt", quantize="int4")
    with pytest.raises(ConfigError, match="no recurrent layer"):
        export_student(ckpt, tmp_path / "q.pt", quantize="int8", int8_layers=["recurrent"])
    with pytest.raises(ConfigError, match="int8 layers"):
        export_student(ckpt, tmp_path / "q.pt", quantize="int8", int8_layers=["conv"])
    assert not list(tmp_path.glob("q*")) and not list(tmp_path.glob(".q*"))
    out = export_student(ckpt, tmp_path / "int8.pt", quantize="int8", checks=False)
    with pytest.raises(ConfigError, match="CPU only"):  # refused before any CUDA kernel is asked for
        load_exported(out, device="cuda")


def test_onnx_export_records_checks_and_runs_in_onnxruntime(gru_student, tmp_path):
    from stgkd.export import OnnxProgram

    ckpt, data, fp32_path = gru_student
    out = export_student(ckpt, tmp_path / "student.onnx", format="onnx", dataset=data, latency_iters=2)
    assert file_kind(out) == "onnx"
    program, meta, kind = load_exported(out)
    assert isinstance(program, OnnxProgram) and kind == "onnx"
    assert meta["backend"] == "onnxruntime" and meta["checked_with"] == "onnxruntime"
    checks = meta["deployment_checks"]
    assert checks["accuracy"]["made"] and abs(checks["accuracy"]["mae_change_pct"]["avg"]) < 1e-3
    assert set(checks["latency"]["results"]) == {"torchscript-fp32", "onnxruntime"}
    fp32, _, _ = load_exported(fp32_path)
    values, stamps = deployment_inputs(meta)
    np.testing.assert_allclose(program(values, stamps).numpy(), fp32(values, stamps).numpy(), rtol=1e-4, atol=1e-3)


def test_onnx_without_onnxruntime_is_written_unchecked_and_says_so(tmp_path, monkeypatch):
    import onnx  # the deploy extra, in dev

    ckpt, _, _ = make_checkpoint(tmp_path / "best.pt")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    out = export_student(ckpt, tmp_path / "s.onnx", format="onnx")
    meta = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}["stgkd_metadata"])
    assert meta["checked_with"] is None
    assert "onnxruntime is not installed" in meta["deployment_checks"]["accuracy"]["reason"]
    with pytest.raises(ConfigError, match="onnxruntime"):
        load_exported(out)


def test_cli_export_int8_prints_the_checks(tmp_path, capsys):
    ckpt, _, _ = make_checkpoint(tmp_path / "best.pt")
    assert main(["export", str(ckpt), "--out", str(tmp_path / "q.pt"), "--quantize", "int8", "--latency-iters", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["backend"] == "torchscript-int8" and summary["precision"] == "int8"
    assert summary["checks"]["accuracy"].startswith("not checked: the test split could not be rebuilt")
    assert set(summary["checks"]["speedup_vs_fp32"]) == {"1", "64"}
    assert set(summary["checks"]["cpu_latency_ms_1_thread"]) == {"torchscript-fp32", "torchscript-int8"}
    assert main(["export", str(ckpt), "--out", str(tmp_path / "q.onnx"), "--format", "onnx", "--quantize", "int8"]) == 2
    assert "format='torchscript'" in capsys.readouterr().err


def test_cli_export_onnx_writes_a_checked_file_that_forecasts(tmp_path, capsys):
    # README: `stgkd export ... --format onnx` writes an ONNX file checked with onnxruntime, its CPU latency
    # measured against the fp32 TorchScript program and recorded in the metadata
    ckpt, model, _ = make_checkpoint(tmp_path / "best.pt")
    out = tmp_path / "student.onnx"
    assert main(["export", str(ckpt), "--out", str(out), "--format", "onnx", "--latency-iters", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kind"] == "onnx" and summary["backend"] == "onnxruntime" and "note" not in summary
    assert set(summary["checks"]["cpu_latency_ms_1_thread"]) == {"torchscript-fp32", "onnxruntime"}
    program, meta, kind = load_exported(out)
    assert kind == "onnx" and meta["checked_with"] == "onnxruntime" and meta["export_format"] == "onnx"
    values, secs, minutes = sample_inputs(3)
    np.testing.assert_allclose(program(torch.from_numpy(values), torch.from_numpy(secs)).numpy(),
                               reference_forecast(model, values, minutes), rtol=1e-4, atol=1e-3)


# --------------------------------------------------------------------------- CPU programs: frozen, AOTInductor


@pytest.fixture(scope="module")
def stgru_student(tmp_path_factory):
    """The default student family (``stgru``: sparse road supports, low-rank adaptive graph, embeddings,
    seasonal-lag channels of one day where three days allow them) trained briefly on a 6-sensor network:
    its checkpoint."""
    from stgkd.data.synthetic import generate
    from stgkd.engine import TrainConfig, train_model

    root = tmp_path_factory.mktemp("stgru-student")
    data, _ = generate(num_nodes=6, num_days=3, seed=0)
    train_model(data, "stgru", root / "run", hparams={"hidden": 8, "rank": 3},
                config=TrainConfig(epochs=1, batch_size=32, limit_batches=2, device="cpu", seed=0),
                progress=False, log=False)
    return root / "run" / "best.pt"


def forecaster_inputs(fc, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw readings ``(B, T, N)`` (a few missing) and one start time per window for ``fc.predict``."""
    rng = np.random.default_rng(batch)
    values = rng.uniform(20, 70, (batch, fc.input_steps, fc.num_nodes)).astype(np.float32)
    values[rng.uniform(size=values.shape) < 0.05] = np.nan
    values[:, -1] = rng.uniform(20, 70, (batch, fc.num_nodes))  # every sensor observed at least once
    starts = np.datetime64("2026-11-20T07:40:00") + np.arange(batch) * np.timedelta64(65, "m")
    return values, starts


def assert_forecasts_like_eager(fc, ckpt, atol: float = 1e-4) -> None:
    """``fc`` (an exported file) forecasts what the checkpoint's eager model does, at batch 1 and 64."""
    from stgkd import Forecaster

    eager = Forecaster.load(ckpt)
    assert eager.backend == "checkpoint"
    for batch in (1, 64):
        values, starts = forecaster_inputs(fc, batch)
        got, want = fc.predict(values, start=starts), eager.predict(values, start=starts)
        assert got.shape == want.shape == (batch, fc.horizon, fc.num_nodes)
        assert float(np.abs(got - want).max()) <= atol


@pytest.mark.parametrize("family", ["gcn-gru", "stgru"])
def test_torchscript_frozen_export_loads_and_forecasts_like_eager(family, gru_student, stgru_student, tmp_path):
    from stgkd import Forecaster

    ckpt = gru_student[0] if family == "gcn-gru" else stgru_student
    out = export_student(ckpt, tmp_path / "frozen.pt", format="torchscript-frozen")
    assert file_kind(out) == "torchscript"
    module, meta, _ = load_exported(out)
    assert meta["export_format"] == "torchscript-frozen" and meta["backend"] == "torchscript-frozen"
    assert meta["model"]["name"] == family
    # frozen: the student's methods inlined into one graph the optimiser sees whole
    plain, _, _ = load_exported(export_student(ckpt, tmp_path / "plain.pt", format="torchscript"))
    assert "prim::CallMethod" in str(plain.graph) and "prim::CallMethod" not in str(module.graph)
    fc = Forecaster.load(out)
    assert fc.backend == "torchscript-frozen" and fc.input_features == meta["input_features"]
    assert_forecasts_like_eager(fc, ckpt)
    with pytest.raises(ConfigError, match="optimised for the CPU"):  # refused before any CUDA call
        load_exported(out, device="cuda")
    with pytest.raises(ConfigError, match="format='torchscript-frozen' builds a program for the CPU"):
        export_student(ckpt, tmp_path / "f.pt", format="torchscript-frozen", device="cuda")


def test_aoti_refusals_say_what_is_needed(tmp_path, monkeypatch):
    import stgkd.export.aoti as aoti

    ckpt, _, _ = make_checkpoint(tmp_path / "best.pt")
    with pytest.raises(ConfigError, match=r"PT2 archive.*--out s\.pt2"):
        export_student(ckpt, tmp_path / "s.pt", format="aoti")
    with pytest.raises(ConfigError, match="format='aoti' builds a program for the CPU"):
        export_student(ckpt, tmp_path / "s.pt2", format="aoti", device="cuda")
    with pytest.raises(ConfigError, match="torch 1.0.0 runs only under that torch"):
        aoti.load_aoti(b"", {"compiled_for": {"torch_version": "1.0.0"}}, trust_native_code=True, where="s.pt2")
    with pytest.raises(ConfigError, match="trust_native_code=True"):
        aoti.load_aoti(b"", {}, where="s.pt2")
    monkeypatch.setattr(aoti, "cpp_compiler", lambda: None)
    with pytest.raises(ConfigError, match="needs a C.. compiler"):
        export_student(ckpt, tmp_path / "s.pt2", format="aoti")
    assert not list(tmp_path.glob("*s.*pt2"))


@pytest.mark.compile  # inductor compiles the program to C++ and builds a shared library: tens of seconds
def test_aoti_export_loads_with_trust_and_forecasts_like_eager(stgru_student, tmp_path):
    from stgkd import Forecaster
    from stgkd.export.aoti import cpp_compiler

    if cpp_compiler() is None:  # a machine without a compiler, as a CUDA test on one without CUDA; the error
        # for a missing compiler is tested everywhere, with the compiler patched away (above)
        pytest.skip("no C++ compiler (g++ or $CXX): an AOTInductor package cannot be built here")
    out = export_student(stgru_student, tmp_path / "student.pt2", format="aoti")
    assert file_kind(out) == "aoti"
    with pytest.raises(ConfigError, match="trust_native_code=True"):  # a library is never loaded unasked
        Forecaster.load(out)
    fc = Forecaster.load(out, trust_native_code=True)
    assert fc.backend == "aoti" and fc.metadata["export_format"] == "aoti"
    assert fc.metadata["compiled_for"]["torch_version"] == torch.__version__
    assert_forecasts_like_eager(fc, stgru_student)
    renamed = out.rename(tmp_path / "student.bin")  # read by its contents, not its name
    assert Forecaster.load(renamed, trust_native_code=True).backend == "aoti"
    with pytest.raises(ConfigError, match="compiled for the CPU"):
        load_exported(renamed, device="cuda", trust_native_code=True)


def test_cli_export_writes_a_frozen_file(tmp_path, capsys):
    ckpt, model, _ = make_checkpoint(tmp_path / "best.pt")
    out = tmp_path / "frozen.pt"
    assert main(["export", str(ckpt), "--out", str(out), "--format", "torchscript-frozen"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "torchscript-frozen" and summary["backend"] == "torchscript-frozen"
    module, _, _ = load_exported(out)
    values, secs, minutes = sample_inputs(3)
    np.testing.assert_allclose(module(torch.from_numpy(values), torch.from_numpy(secs)).numpy(),
                               reference_forecast(model, values, minutes), rtol=1e-5, atol=1e-4)


def test_a_program_off_by_one_weight_is_reported_unfaithful(tmp_path):
    import copy

    from stgkd.export.programs import FAITHFUL_ATOL, build_program, check_faithful
    from stgkd.export.wrapper import build_forecaster_module, rewrap

    ckpt, _, _ = make_checkpoint(tmp_path / "best.pt")
    module = build_forecaster_module(read_checkpoint(ckpt))
    for name in ("eager", "torchscript", "torchscript-frozen", "onnx-extended"):
        built = build_program(name, module)
        assert built.faithful and built.reason == "", (name, built.reason)
        assert set(built.check["max_abs_diff"]) == {"1", "64"}
        assert max(built.check["max_abs_diff"].values()) <= FAITHFUL_ATOL
    # the exported copy with one weight moved by 1e-2: the check sees it (12 mph std -> ~0.1 mph)
    student = copy.deepcopy(module.student)
    with torch.no_grad():
        student.out.weight[0, 0] += 1e-2
    built = build_program("torchscript", rewrap(module, student), reference=module)
    assert built.program is not None and not built.faithful
    assert built.reason.startswith("not faithful: max abs difference")
    assert min(built.check["max_abs_diff"].values()) > FAITHFUL_ATOL
    row = built.to_dict()
    assert row["built"] and not row["faithful"] and row["file_format"] == "torchscript" and "program" in row
    # a program that forecasts NaN, or the wrong shape, is not faithful either
    nan = check_faithful(lambda v, s: torch.full((v.shape[0], H, N), float("nan")), module)
    assert not nan["faithful"] and nan["max_abs_diff"] == {"1": float("inf"), "64": float("inf")}
    assert not check_faithful(lambda v, s: module(v, s)[:, :1], module)["faithful"]


def test_a_program_that_cannot_be_built_is_recorded_with_why(tmp_path, monkeypatch):
    import stgkd.export.aoti as aoti
    from stgkd.export.programs import build_program
    from stgkd.export.wrapper import build_forecaster_module

    ckpt, _, _ = make_checkpoint(tmp_path / "best.pt")
    module = build_forecaster_module(read_checkpoint(ckpt))
    monkeypatch.setattr(aoti, "cpp_compiler", lambda: None)
    built = build_program("aoti", module)
    assert built.program is None and not built.faithful and built.check == {}
    assert built.reason.startswith("failed to build: ConfigError: format='aoti' needs a C++ compiler")
    assert built.to_dict()["built"] is False


@pytest.mark.compile  # inductor compiles C++ kernels for each batch size
def test_compiled_program_is_faithful_and_survives_new_strides_and_thread_counts(gru_student):
    from stgkd.export.programs import build_program
    from stgkd.export.wrapper import build_forecaster_module
    from stgkd.latency import RawUnitsAdapter, cpu_threads

    torch._dynamo.reset()
    module = build_forecaster_module(read_checkpoint(gru_student[0]))  # a GRU: traced only with allow_rnn
    built = build_program("compile", module)
    assert built.faithful, built.reason
    # checked at batch 1 and 64: the second program has a dynamic batch, so no other batch size compiles
    from torch._dynamo.utils import counters

    from stgkd.export.wrapper import example_inputs

    graphs = counters["stats"]["unique_graphs"]
    with torch.inference_mode():
        for b in (3, 7):
            values, stamps = example_inputs(module, b, seed=b)
            assert torch.allclose(built.program(values, stamps), module(values, stamps), atol=1e-4)
    assert counters["stats"]["unique_graphs"] == graphs
    # timing feeds expanded (stride-0) timestamps: a new signature compiles again and still matches
    adapter = RawUnitsAdapter(built.program, module.history_steps, 5)
    eager = RawUnitsAdapter(module, module.history_steps, 5)
    x = torch.randn(2, module.history_steps, module.num_nodes, 1)
    with torch.inference_mode():
        assert torch.allclose(adapter(x), eager(x), atol=1e-4)
        with cpu_threads(torch.get_num_threads() + 1):  # dynamo guards on the thread count: compiled again
            assert torch.allclose(adapter(x), eager(x), atol=1e-4)
    torch._dynamo.reset()


def test_compile_at_load_refuses_a_file_without_an_eager_program_or_a_machine_without_a_compiler(tmp_path,
                                                                                                   monkeypatch):
    import stgkd.export.aoti as aoti
    from stgkd import Forecaster
    from stgkd.export import programs
    from stgkd.export.programs import check_compilable

    ckpt, _, _ = make_checkpoint(tmp_path / "best.pt")
    scripted = export_student(ckpt, tmp_path / "student.pt", format="torchscript")
    with pytest.raises(ConfigError, match=r"student\.pt: compile=True compiles an eager program.*'torchscript'"):
        Forecaster.load(scripted, compile=True)
    assert Forecaster.load(scripted).backend == "torchscript-fp32"  # the file itself loads as it is
    aoti_file = tmp_path / "student.aoti.pt2"
    with pytest.raises(ConfigError, match=r"compile=True compiles an eager program.*'aoti'"):
        check_compilable("aoti", torch.device("cpu"), str(aoti_file))  # Forecaster.load asks before reading
    with pytest.raises(ConfigError, match=r"best\.pt: compile=True compiles for the CPU .* or a CUDA GPU .* on 'mps'"):
        check_compilable("checkpoint", torch.device("mps"), str(ckpt))  # the check Forecaster.load makes first
    monkeypatch.setattr(programs, "_has_triton", lambda: False)
    with pytest.raises(ConfigError, match=r"best\.pt: compile=True on cuda needs Triton \(pip install triton"):
        check_compilable("checkpoint", torch.device("cuda"), str(ckpt))
    monkeypatch.setattr(aoti, "cpp_compiler", lambda: None)
    with pytest.raises(ConfigError, match=r"best\.pt: compile=True needs a C\+\+ compiler"):
        Forecaster.load(ckpt, compile=True)


@pytest.mark.compile  # inductor compiles C++ kernels for batch 1 and 64
def test_a_checkpoint_or_torch_export_file_compiled_at_load_forecasts_like_eager(stgru_student, tmp_path):
    from stgkd import Forecaster
    from stgkd.export.aoti import cpp_compiler

    if cpp_compiler() is None:  # the error for a missing compiler is tested everywhere (above)
        pytest.skip("no C++ compiler (g++ or $CXX): torch.compile's CPU backend cannot build here")
    exported = export_student(stgru_student, tmp_path / "student.pt2", format="torch.export")
    for path in (stgru_student, exported):
        fc = Forecaster.load(path, compile=True)
        assert fc.backend == "aoti-cached"
        assert_forecasts_like_eager(fc, stgru_student)


@pytest.mark.compile  # inductor writes Triton kernels and builds the wrapper
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_compiled_for_the_gpu_at_load_forecasts_like_eager_in_a_cuda_graph(stgru_student, tmp_path):
    from stgkd import Forecaster

    exported = export_student(stgru_student, tmp_path / "student.pt2", format="torch.export")
    eager = Forecaster.load(exported, device="cuda")
    assert eager.backend == "torch.export"  # on a GPU a file runs as read unless compile=True
    # the file (moved to the GPU, then compiled); a checkpoint differs only in being exported in memory first
    fc = Forecaster.load(exported, device="cuda", compile=True, warm_batches=(1, 64))
    assert fc.backend == "aoti-cached" and fc.program.device.type == "cuda"
    for batch in (1, 64):  # replayed in the CUDA graphs warm_up captured
        values, starts = forecaster_inputs(fc, batch)
        got, want = fc.predict(values, start=starts), eager.predict(values, start=starts)
        assert float(np.abs(got - want).max()) <= 1e-4
