"""The deployment API: Forecaster.load / predict in raw units."""

from __future__ import annotations

import json
import threading

import numpy as np
import pandas as pd
import pytest
import torch
from test_export import H, N, T, make_checkpoint, reference_forecast

from stgkd import Forecaster
from stgkd.errors import CheckpointError, StgkdError
from stgkd.export import export_student

IDS = [f"s{i}" for i in range(N)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("fc")
    ckpt, model, _ = make_checkpoint(root / "best.pt")
    # TorchScript: input handling is the same for every backend, and this one runs without compiling (the
    # plain export, compiled at load: tests/test_export.py)
    return export_student(ckpt, root / "student.pt", format="torchscript"), ckpt, model


def frame(seed: int = 0, start="2026-11-20 07:40") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=T, freq="5min")
    return pd.DataFrame(rng.uniform(20, 70, (T, N)).astype(np.float32), index=index, columns=IDS)


def minutes_of(index) -> np.ndarray:
    return np.asarray(index.hour * 60 + index.minute, dtype=np.float64)


def test_attributes(exported):
    fc = Forecaster.load(exported[0])
    assert fc.sensor_ids == IDS and fc.input_steps == T and fc.horizon == H
    assert fc.interval == pd.Timedelta(minutes=5).to_pytimedelta() and fc.interval_minutes == 5
    assert fc.input_features == ["value", "time_of_day"]
    assert fc.metadata["model"]["name"] == "test-export-student" and fc.metadata["epoch"] == 7
    assert fc.missing == "zero"  # a checkpoint written before conventions were recorded
    assert "sensors=5" in repr(fc)


def test_dataframe_in_dataframe_out_matches_reference(exported):
    fc = Forecaster.load(exported[0])
    df = frame()
    df.iloc[1, 2] = np.nan  # missing, NaN form
    df.iloc[0, 3] = 0.0  # missing, zero form
    out = fc.predict(df)
    want = reference_forecast(exported[2], df.to_numpy()[None], minutes_of(df.index)[None])[0]
    assert list(out.columns) == IDS and out.index.name is None
    assert fc.predict(df.rename_axis("time")).index.name == "time"  # the index keeps its name
    # an index in another resolution (seconds) forecasts the same, at the same timestamps
    pd.testing.assert_frame_equal(fc.predict(df.set_axis(df.index.as_unit("s"))), out, check_index_type=False)
    assert list(out.index) == [df.index[-1] + pd.Timedelta(minutes=5 * (k + 1)) for k in range(H)]
    np.testing.assert_allclose(out.to_numpy(), want, rtol=1e-5, atol=1e-4)
    # columns in another order are matched by id; the answer keeps the caller's order
    shuffled = df[IDS[::-1]]
    out2 = fc.predict(shuffled)
    assert list(out2.columns) == IDS[::-1]
    np.testing.assert_allclose(out2[IDS].to_numpy(), out.to_numpy(), rtol=1e-6)
    # NaN and 0 are the same missing reading
    df_zero = df.fillna(0.0)
    np.testing.assert_allclose(fc.predict(df_zero).to_numpy(), out.to_numpy(), rtol=1e-6)


@pytest.mark.parametrize(("missing", "sentinel"), [("zero", 0.0), ("nan", None), ("none", None), ("-1", -1.0)])
def test_a_zero_is_missing_or_a_reading_as_the_training_data_said(tmp_path, missing, sentinel):
    ckpt, model, _ = make_checkpoint(tmp_path / "best.pt", missing=missing)
    # the plain export, run uncompiled: the convention lives in the program's wrapper (compiled: test_export.py)
    fc = Forecaster.load(export_student(ckpt, tmp_path / "student.pt"), compile=False)
    assert fc.missing == missing and fc.metadata["missing"] == missing
    df = frame()
    df.iloc[0, 3] = 0.0  # a reading of 0, or a missing one under "zero"
    df.iloc[1, 2] = np.nan  # missing under every convention
    df.iloc[2, 1] = -1.0  # missing under "-1", a (strange) reading otherwise
    want = reference_forecast(model, df.to_numpy()[None], minutes_of(df.index)[None], sentinel=sentinel)[0]
    np.testing.assert_allclose(fc.predict(df).to_numpy(), want, rtol=1e-5, atol=1e-4)
    zeros = df.assign(s0=0.0)  # a sensor that reads 0 all along
    if missing == "zero":
        with pytest.raises(StgkdError, match=r"no reading in the whole 4-step history: \['s0'\]"):
            fc.predict(zeros)
    else:
        assert np.isfinite(fc.predict(zeros).to_numpy()).all()


def test_arrays_with_start_or_timestamps(exported):
    fc = Forecaster.load(exported[0])
    a, b = frame(1), frame(2, start="2026-11-21 23:50")  # b crosses midnight
    single = fc.predict(a.to_numpy(), start=a.index[0])
    assert single.shape == (H, N) and single.dtype == np.float32
    np.testing.assert_allclose(single, fc.predict(a).to_numpy(), rtol=1e-6)
    stacked = np.stack([a.to_numpy(), b.to_numpy()])
    batch = fc.predict(stacked, timestamps=np.stack([a.index.values, b.index.values]))
    assert batch.shape == (2, H, N)
    want = reference_forecast(exported[2], stacked, np.stack([minutes_of(a.index), minutes_of(b.index)]))
    np.testing.assert_allclose(batch, want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(fc.predict(stacked, start=[a.index[0], b.index[0]]), batch, rtol=1e-6)
    np.testing.assert_allclose(fc.predict(torch.from_numpy(stacked), start=[a.index[0], b.index[0]]), batch, rtol=1e-6)
    # timezone-aware index: calendar features use the local wall-clock time
    local = a.tz_localize("America/Los_Angeles")
    got = fc.predict(local)
    np.testing.assert_allclose(got.to_numpy(), fc.predict(a).to_numpy(), rtol=1e-6)
    assert got.index[0] == local.index[-1] + pd.Timedelta(minutes=5) and str(got.index.tz) == "America/Los_Angeles"


def test_an_index_in_any_unit_gives_the_same_forecast(exported):
    fc = Forecaster.load(exported[0])
    df = frame(3)
    want = fc.predict(df.set_axis(df.index.as_unit("ns")))
    for unit in ("s", "ms", "us"):
        got = fc.predict(df.set_axis(df.index.as_unit(unit)))
        np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
        assert got.index.unit == unit and (got.index == want.index).all()
    with pytest.raises(StgkdError, match="regular, 5 min apart"):
        fc.predict(df.set_axis((df.index + pd.to_timedelta(np.arange(T), unit="s")).as_unit("s")))
    local = df.tz_localize("America/Los_Angeles")
    want = fc.predict(local)
    for unit in ("s", "ms"):  # an aware index keeps its unit too
        got = fc.predict(local.set_axis(local.index.as_unit(unit)))
        np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
        assert got.index.unit == unit and (got.index == want.index).all()


def test_a_start_given_in_any_form_reads_the_same(exported):
    fc = Forecaster.load(exported[0])
    df = frame(4)
    want = fc.predict(df)
    first = df.index[0]
    for start in (first, str(first), first.to_pydatetime(), first.to_datetime64(), np.array(first.to_datetime64()),
                  np.array(str(first)), [first], pd.DatetimeIndex([first]), int(first.as_unit("ns").value)):
        np.testing.assert_array_equal(fc.predict(df.to_numpy(), start=start), want.to_numpy())


def test_bad_histories_raise_clear_errors(exported):
    fc = Forecaster.load(exported[0])
    df = frame()
    with pytest.raises(StgkdError, match="at least 4 steps.*got 3"):
        fc.predict(df.iloc[1:])
    with pytest.raises(StgkdError, match=r"missing from the columns: \['s3'\]"):
        fc.predict(df.drop(columns="s3"))
    with pytest.raises(StgkdError, match=r"unknown sensor.*\['s99'\]"):
        fc.predict(df.assign(s99=1.0))
    dead = df.copy()
    dead["s1"] = np.nan
    dead.iloc[0, 4] = 0.0
    dead.iloc[1:, 4] = np.nan
    with pytest.raises(StgkdError, match=r"no reading in the whole 4-step history: \['s1', 's4'\]"):
        fc.predict(dead)
    with pytest.raises(StgkdError, match=r"regular, 5 min apart; found a step of 0 days 00:06:00 after "
                                         r"2026-11-20 07:50:00 .*asfreq\('5min'\)"):
        fc.predict(df.set_axis(pd.DatetimeIndex(list(df.index[:-1]) + [df.index[-1] + pd.Timedelta("1min")])))
    with pytest.raises(StgkdError, match="NaT"):
        fc.predict(df.set_axis(pd.DatetimeIndex(list(df.index[:-1]) + [pd.NaT])))
    with pytest.raises(StgkdError, match="readings must be numbers"):
        fc.predict(df.assign(s2="fast"))
    with pytest.raises(StgkdError, match="DatetimeIndex"):
        fc.predict(df.reset_index(drop=True))
    with pytest.raises(StgkdError, match=r"expected shape \(T, 5\).*T >= input_steps = 4, got \(3, 5\)"):
        fc.predict(np.ones((3, N)), start="2026-01-01")
    with pytest.raises(StgkdError, match="pass timestamps= or start="):
        fc.predict(np.ones((T, N)))
    with pytest.raises(StgkdError, match="Inf"):
        fc.predict(np.full((T, N), np.inf), start="2026-01-01")
    one_inf = df.copy()
    one_inf.iloc[2, 1] = -np.inf  # among finite readings, and beside a missing one
    with pytest.raises(StgkdError, match="Inf"):
        fc.predict(one_inf)
    one_inf.iloc[0, 0] = np.nan
    with pytest.raises(StgkdError, match="Inf"):
        fc.predict(one_inf)
    with pytest.raises(StgkdError, match="timestamps: expected 4"):
        fc.predict(np.ones((T, N)), timestamps=pd.date_range("2026-01-01", periods=3, freq="5min"))


def test_a_longer_history_uses_its_last_steps_and_checks_only_those(exported):
    """A rolling buffer holds more than the model reads: its last ``input_steps`` rows forecast, the rest are
    ignored (a gap or a dead sensor there too), and a gap among the rows used is an error."""
    fc = Forecaster.load(exported[0])
    recent = frame(3, start="2026-11-20 08:00")
    older = frame(4, start="2026-11-20 06:00")  # an hour before, then a gap of an hour: ignored
    older["s1"] = np.nan
    buffer = pd.concat([older, recent])
    out = fc.predict(buffer)
    pd.testing.assert_frame_equal(out, fc.predict(recent))
    assert out.index[0] == recent.index[-1] + pd.Timedelta(minutes=5)
    # arrays too: the last T_in steps, the timestamps of the whole history
    long = np.concatenate([np.full((7, N), 99.0), recent.to_numpy()])
    start = recent.index[0] - 7 * pd.Timedelta(minutes=5)
    np.testing.assert_allclose(fc.predict(long, start=start), out.to_numpy(), rtol=1e-6)
    stamps = pd.date_range(start, periods=len(long), freq="5min")
    np.testing.assert_allclose(fc.predict(long, timestamps=stamps), out.to_numpy(), rtol=1e-6)
    with pytest.raises(StgkdError, match="timestamps: expected 11"):
        fc.predict(long, timestamps=recent.index)
    gap = pd.concat([recent.iloc[:2], recent.iloc[2:].shift(freq="5min")])  # 5 rows, a gap in the last 4
    with pytest.raises(StgkdError, match="the last 4 timestamps must be regular"):
        fc.predict(pd.concat([older.iloc[:1], gap]))


def test_columns_in_any_order_are_matched_each_call(exported):
    """The column order is worked out once per set of columns and kept; another order on the next call is
    matched again, never answered with the previous call's order."""
    fc = Forecaster.load(exported[0])
    df = frame(7)
    ordered = fc.predict(df)
    for cols in (IDS[::-1], IDS[1:] + IDS[:1], IDS, IDS[::-1]):
        got = fc.predict(df[cols])
        assert list(got.columns) == cols
        pd.testing.assert_frame_equal(got[IDS], ordered)
    with pytest.raises(StgkdError, match=r"missing from the columns: \['s0'\]"):
        fc.predict(df[IDS[1:]])
    assert list(fc.predict(df.rename(columns=str)).columns) == IDS  # the cache is keyed by the columns' values


def rewrite_torchscript_metadata(src, dst, change):
    """A copy of the TorchScript file ``src`` whose metadata is ``change(metadata dict) -> JSON text``."""
    extra = {"metadata.json": ""}
    module = torch.jit.load(str(src), _extra_files=extra)
    torch.jit.save(module, str(dst), _extra_files={"metadata.json": change(json.loads(extra["metadata.json"]))})
    return dst


def test_a_file_from_a_newer_stgkd_says_so(exported, tmp_path):
    newer = rewrite_torchscript_metadata(
        exported[0], tmp_path / "newer.pt",
        lambda meta: json.dumps({**meta, "format": "stgkd-export/2", "stgkd_version": "9.0.0"}))
    with pytest.raises(CheckpointError, match=r"newer.pt: written by a newer stgkd \(9.0.0\) in format "
                                              r"stgkd-export/2; this stgkd .* reads stgkd-export/1: upgrade stgkd"):
        Forecaster.load(newer)
    foreign = rewrite_torchscript_metadata(exported[0], tmp_path / "foreign.pt",
                                           lambda meta: json.dumps({**meta, "format": "other/7"}))
    with pytest.raises(CheckpointError, match="foreign.pt: no stgkd metadata"):
        Forecaster.load(foreign)
    from stgkd.version import package_version

    assert Forecaster.load(exported[0]).metadata["stgkd_version"] == package_version()


def test_load_forecasts_before_it_returns(exported, monkeypatch):
    """``load`` runs the program at each warm batch size (twice), so a service's first forecast finds it
    compiled / captured / optimised; ``warm_batches=()`` defers that to the first calls."""
    calls: list[int] = []
    real = Forecaster._forecast

    def spy(self, buffers):
        values, secs = buffers[:2]
        calls.append(int(values.shape[0]))
        assert values.shape[1:] == (T, N) and secs.shape == values.shape[:2]
        return real(self, buffers)

    monkeypatch.setattr(Forecaster, "_forecast", spy)
    fc = Forecaster.load(exported[0])
    assert calls == [1, 1]
    calls.clear()
    Forecaster.load(exported[0], warm_batches=(1, 4))
    assert calls == [1, 1, 4, 4]
    calls.clear()
    Forecaster.load(exported[0], warm_batches=())
    assert calls == []
    with pytest.raises(StgkdError, match="at least 1"):
        fc.warm_up([0])


def test_load_checkpoint_directly_and_bad_files(exported, tmp_path):
    student, ckpt, _ = exported
    df = frame(4)
    np.testing.assert_allclose(Forecaster.load(ckpt).predict(df).to_numpy(), Forecaster.load(student).predict(df).to_numpy(),
                               rtol=1e-5, atol=1e-5)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(student.read_bytes()[: student.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="broken.pt"):
        Forecaster.load(broken)
    with pytest.raises(CheckpointError, match="absent.pt"):
        Forecaster.load(tmp_path / "absent.pt")
    if not torch.cuda.is_available():
        with pytest.raises(StgkdError, match=r"student.pt: device='cuda' asked for, but CUDA is not available.*"
                                             r"load it with device='cpu'"):
            Forecaster.load(student, device="cuda")
        from stgkd.errors import ConfigError

        with pytest.raises(ConfigError, match=r"best.pt: an export for device='cuda' .* CUDA is not available here"):
            export_student(ckpt, tmp_path / "cuda.pt", device="cuda")
        assert not (tmp_path / "cuda.pt").exists()


def test_each_forecast_is_the_callers_own(exported):
    """The inputs live in buffers reused call after call; a forecast returned earlier never changes, even from a
    program whose output is a view of its input (a last-values forecast)."""
    fc = Forecaster.load(exported[0])
    a, b = frame(1), frame(2)
    first = fc.predict(a)
    kept = first.to_numpy().copy()
    fc.predict(b)
    np.testing.assert_array_equal(first.to_numpy(), kept)

    naive = Forecaster(lambda values, stamps: values[:, -H:], fc.metadata)  # returns a view of its input
    got = naive.predict(a)
    naive.predict(b)
    naive.predict(b.to_numpy(), start=b.index[0])
    np.testing.assert_array_equal(got.to_numpy(), a.to_numpy()[-H:])


def test_shared_across_threads_gives_identical_results(exported):
    fc = Forecaster.load(exported[0])
    frames = [frame(s) for s in range(8)]
    expected = [fc.predict(f).to_numpy() for f in frames]
    results: dict[tuple[int, int], np.ndarray] = {}
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            for rep in range(5):
                i = (w + rep) % len(frames)
                results[(w, rep)] = (i, fc.predict(frames[i]).to_numpy())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 20
    for i, got in results.values():
        np.testing.assert_array_equal(got, expected[i])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_cuda_graph_fast_path_matches_plain_cuda(exported):
    fast = Forecaster.load(exported[0], device="cuda")
    plain = Forecaster.load(exported[0], device="cuda", cuda_graphs=False)
    for seed in range(3):  # first call captures, later calls replay
        df = frame(seed)
        np.testing.assert_allclose(fast.predict(df).to_numpy(), plain.predict(df).to_numpy(), rtol=1e-5, atol=1e-4)
    assert set(fast._graphs) == {1}
    batch = np.stack([frame(s).to_numpy() for s in range(3)])
    np.testing.assert_allclose(fast.predict(batch, start="2026-11-20 07:40"),
                               plain.predict(batch, start="2026-11-20 07:40"), rtol=1e-5, atol=1e-4)
    assert set(fast._graphs) == {1, 3}


def test_backend_says_which_path_runs(exported, tmp_path):
    student, ckpt, model = exported
    fp32 = Forecaster.load(student)
    assert fp32.backend == "torchscript-fp32" and "backend=torchscript-fp32" in repr(fp32)
    assert Forecaster.load(ckpt).backend == "checkpoint"
    int8 = Forecaster.load(export_student(ckpt, tmp_path / "int8.pt", quantize="int8", checks=False))
    assert int8.backend == "torchscript-int8" and int8.metadata["precision"] == "int8"
    df = frame(5)
    want = reference_forecast(model, df.to_numpy()[None], minutes_of(df.index)[None])[0]
    got = int8.predict(df).to_numpy()
    assert not np.array_equal(got, fp32.predict(df).to_numpy())  # int8 kernels ran
    np.testing.assert_allclose(got, want, atol=0.05 * 12.0)  # within 5 % of the scaler's std (12)


def test_onnx_file_runs_in_onnxruntime(exported, tmp_path):
    student, ckpt, _ = exported
    fc = Forecaster.load(export_student(ckpt, tmp_path / "s.onnx", format="onnx", checks=False))
    assert fc.backend == "onnxruntime" and fc.device == torch.device("cpu")
    df = frame(6)
    np.testing.assert_allclose(fc.predict(df).to_numpy(), Forecaster.load(student).predict(df).to_numpy(),
                               rtol=1e-4, atol=1e-3)
    batch = np.stack([frame(s).to_numpy() for s in range(3)])
    assert fc.predict(batch, start="2026-11-20 07:40").shape == (3, H, N)


@pytest.mark.compile  # AOTInductor compiles the program at the first load
def test_a_file_is_compiled_once_per_machine_and_later_loads_read_only_its_metadata(tmp_path, monkeypatch):
    """The first load compiles (one program for every batch size: a DataFrame, a longer buffer and an array
    all run it); a second load of the same file finds it in the cache and reads nothing of the file's
    program; an entry that no longer loads is compiled again; another thread count is another program."""
    import stgkd.export.load as load
    from stgkd.export.aoti import cpp_compiler
    from stgkd.export.program_cache import CachedProgram
    from stgkd.latency import cpu_threads

    if cpp_compiler() is None:
        pytest.skip("no C++ compiler (g++ or $CXX): the file runs uncompiled here")
    monkeypatch.setenv("STGKD_CACHE_DIR", str(tmp_path / "cache"))
    ckpt, _, _ = make_checkpoint(tmp_path / "best.pt")
    student = export_student(ckpt, tmp_path / "student.pt")
    fc = Forecaster.load(student)
    assert fc.backend == "aoti-cached" and isinstance(fc.program, CachedProgram)
    programs = tmp_path / "cache" / "programs"
    entries = list(programs.glob("*.pt2"))
    assert len(entries) == 1
    df = frame(8)
    uncompiled = Forecaster.load(student, compile=False)
    for history in (df, pd.concat([frame(9, start="2026-11-20 07:00"), df])):
        np.testing.assert_allclose(fc.predict(history).to_numpy(), uncompiled.predict(history).to_numpy(), atol=1e-4)
    batch = np.stack([frame(s).to_numpy() for s in range(3)])
    np.testing.assert_allclose(fc.predict(batch, start="2026-11-20 07:40"),
                               uncompiled.predict(batch, start="2026-11-20 07:40"), atol=1e-4)

    def unread(*args, **kwargs):
        raise AssertionError("the file's program was read although its compiled program is in the cache")

    with monkeypatch.context() as patch:
        patch.setattr(load, "read_torch_export", unread)
        again = Forecaster.load(student)
    assert again.backend == "aoti-cached" and again.program.path == entries[0]
    assert np.array_equal(again.predict(df).to_numpy(), fc.predict(df).to_numpy())
    entries[0].write_bytes(b"truncated")  # an entry that no longer loads: compiled again, and kept
    rebuilt = Forecaster.load(student)
    assert rebuilt.backend == "aoti-cached" and entries[0].stat().st_size > 1000
    np.testing.assert_allclose(rebuilt.predict(df).to_numpy(), fc.predict(df).to_numpy(), atol=1e-5)
    with cpu_threads(torch.get_num_threads() + 1):
        Forecaster.load(student)
    assert len(list(programs.glob("*.pt2"))) == 2
