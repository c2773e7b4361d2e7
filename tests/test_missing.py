"""The missing-value convention: parsed once, applied on load, carried to the loss, the metrics, the
checkpoint and the exported student. The fixture is a count series whose zeros are real readings."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from stgkd.data import load_dataset, prepare
from stgkd.data.core import TrafficData
from stgkd.data.readers import DataWarning, read_generic
from stgkd.distill.losses import masked_mae
from stgkd.errors import ConfigError, DataError, StgkdError
from stgkd.missing import WARN_FRACTION, parse_missing

STOPS = [f"stop{i}" for i in range(6)]
CLOSED = "stop5"  # no passenger all month: a real reading of 0 every hour


def count_values(steps: int = 24 * 12, seed: int = 0) -> np.ndarray:
    """Hourly passenger counts ``(T, 6)``: few by day, none at night, none ever at the closed stop."""
    rng = np.random.default_rng(seed)
    hour = np.arange(steps) % 24
    rate = np.where((hour >= 7) & (hour <= 20), 1.5, 0.0)[:, None] * np.linspace(0.5, 1.5, len(STOPS))[None, :]
    counts = rng.poisson(rate).astype(np.float64)
    counts[:, STOPS.index(CLOSED)] = 0.0
    return counts


def write_counts(folder: Path, values: np.ndarray | None = None, *, empty: tuple[int, int] | None = None) -> Path:
    """The generic layout: ``values.csv`` (timestamp + one column per stop) and ``edges.csv``."""
    folder.mkdir(parents=True, exist_ok=True)
    values = count_values() if values is None else values
    frame = pd.DataFrame(values, columns=STOPS)
    frame.insert(0, "timestamp", pd.date_range("2024-03-01", periods=len(values), freq="60min"))
    text = frame.to_csv(index=False, float_format="%g")
    if empty is not None:  # blank one cell: row, stop
        lines = text.splitlines()
        cells = lines[empty[0] + 1].split(",")
        cells[empty[1] + 1] = ""
        lines[empty[0] + 1] = ",".join(cells)
        text = "\n".join(lines) + "\n"
    (folder / "values.csv").write_text(text)
    edges = [(STOPS[i], STOPS[(i + 1) % len(STOPS)], 1.0) for i in range(len(STOPS))]
    pd.DataFrame(edges, columns=["source", "target", "weight"]).to_csv(folder / "edges.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def counts(tmp_path_factory) -> Path:
    return write_counts(tmp_path_factory.mktemp("counts") / "bus")


def load_quietly(path, **kwargs) -> TrafficData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return load_dataset(path, **kwargs)


# ----------------------------------------------------------------------------------------------
# the convention itself


def test_parse_missing_names_numbers_and_errors():
    assert parse_missing(None).name == "zero" and parse_missing("ZERO ").sentinel == 0.0
    assert parse_missing("nan").sentinel is None and parse_missing(float("nan")).name == "nan"
    assert parse_missing("none").name == "none"
    assert parse_missing(0).name == "zero" and parse_missing("0.0").name == "zero"
    assert parse_missing(-1).name == "-1" and parse_missing("-1.0") == parse_missing(-1)
    assert parse_missing("-9999.5").sentinel == -9999.5 and parse_missing(-9999.5).name == "-9999.5"
    assert parse_missing(parse_missing("nan")) == parse_missing("nan")
    for bad in ("zeros", "inf", True, [0]):
        with pytest.raises(ConfigError, match="'zero'.*'nan'.*'none'.*sentinel"):
            parse_missing(bad)


def test_apply_marks_missing_as_nan_and_copies_only_when_needed():
    values = np.array([[0.0, 3.0], [-1.0, np.nan]], dtype=np.float32)
    zero = parse_missing("zero").apply(values, where="x")
    assert zero is not values and np.isnan(zero[0, 0]) and zero[1, 0] == -1.0  # the caller's array is untouched
    assert values[0, 0] == 0.0
    sentinel = parse_missing(-1).apply(values, where="x")
    np.testing.assert_array_equal(np.isnan(sentinel), [[False, False], [True, True]])
    assert sentinel[0, 0] == 0.0  # a 0 is a reading under a sentinel
    assert parse_missing("nan").apply(values, where="x") is values  # nothing to mark
    clean = np.ones((3, 2), dtype=np.float32)
    assert parse_missing("zero").apply(clean, where="x") is clean
    with pytest.raises(DataError, match=r"x: 1 NaN readings \(first at index \(1, 1\)\).*missing='nan'"):
        parse_missing("none").apply(values, where="x")
    in_place = values.copy()
    parse_missing("zero").apply(in_place, where="x", copy=False)
    assert np.isnan(in_place[0, 0])


def test_traffic_data_applies_its_convention_without_touching_the_callers_array():
    raw = np.array([[0.0, 2.0], [1.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    zero = TrafficData(values=raw, adj=np.eye(2), sensor_ids=["a", "b"])
    assert zero.missing == "zero" and zero.missing_fraction == pytest.approx(4 / 6)
    assert raw[0, 0] == 0.0  # copied before marking
    as_read = TrafficData(values=raw, adj=np.eye(2), sensor_ids=["a", "b"], missing="nan")
    assert as_read.missing_fraction == 0.0 and as_read.silent_sensors == []
    assert TrafficData(values=raw[:, :1] * 0, adj=np.eye(1), sensor_ids=["a"]).silent_sensors == ["a"]
    with pytest.raises(DataError, match="infinite"):
        TrafficData(values=np.array([[np.inf]]), adj=np.eye(1), sensor_ids=["a"])


# ----------------------------------------------------------------------------------------------
# loading a count series


def test_count_series_read_as_counts_keeps_every_zero(counts):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # nothing to warn about
        data = load_dataset(counts, missing="nan")
    raw = count_values()
    assert data.missing == "nan" and data.missing_fraction == 0.0 and data.silent_sensors == []
    np.testing.assert_array_equal(data.values[..., 0], raw.astype(np.float32))
    assert (data.values == 0).mean() > 0.5  # mostly zeros, all of them readings
    assert load_quietly(counts, missing="none").missing == "none"


def test_the_same_file_read_with_zeros_as_missing_warns_and_names_the_closed_stop(counts):
    with pytest.warns(DataWarning) as caught:
        data = load_dataset(counts)  # the default: DCRNN's convention
    messages = [str(w.message) for w in caught]
    share = next(m for m in messages if "% of channel-0 readings are missing" in m)
    assert share.startswith(str(counts / "values.csv"))
    assert f"{100 * data.missing_fraction:.2f}%" in share and data.missing_fraction > WARN_FRACTION
    assert "missing='zero': 0 and NaN are missing" in share and "--missing nan" in share
    silent = next(m for m in messages if "have no channel-0 reading at all" in m)
    assert "1 of 6 sensors" in silent and CLOSED in silent
    assert data.missing == "zero" and data.silent_sensors == [CLOSED]
    assert np.isnan(data.values[count_values() == 0]).all()


def test_sentinel_none_and_gaps(tmp_path):
    raw = count_values()
    raw[5, 1] = -1.0
    folder = write_counts(tmp_path / "sentinel", raw)
    data = load_quietly(folder, missing=-1)
    assert data.missing == "-1" and np.isnan(data.values[5, 1, 0])
    assert int(np.isnan(data.values).sum()) == 1  # the zeros stay readings
    blank = write_counts(tmp_path / "blank", empty=(3, 2))
    assert np.isnan(load_quietly(blank, missing="nan").values[3, 2, 0])
    with pytest.raises(DataError, match=r"values\.csv: 1 NaN readings .*missing='none'.*missing='nan'"):
        load_dataset(blank, missing="none")
    with pytest.raises(ConfigError, match="not a missing-value convention"):
        load_dataset(blank, missing="blank")
    stamps = pd.date_range("2024-03-01", periods=40, freq="60min").delete([20])
    csv = tmp_path / "gap.csv"
    frame = pd.DataFrame(np.ones((39, 2)), columns=["a", "b"], index=stamps.rename("timestamp"))
    frame.to_csv(csv)
    with pytest.raises(DataError, match="gaps='fill' inserts missing readings.*missing='none'"):
        read_generic(csv, np.eye(2), gaps="fill", missing="none")
    with pytest.warns(DataWarning, match="inserted 1 missing"):
        filled = read_generic(csv, np.eye(2), gaps="fill", missing="nan")
    assert np.isnan(filled.values[20]).all() and filled.missing_fraction == pytest.approx(1 / 40)


def test_registry_entries_keep_dcrnns_convention_and_synthetic_follows_the_argument():
    from stgkd.data.datasets import DATASETS, get_dataset

    assert get_dataset("metr-la").missing == "zero" and get_dataset("pems-bay").missing == "zero"
    assert all(get_dataset(name).missing == "zero" for name in DATASETS.names() if name != "synthetic-counts")
    assert get_dataset("synthetic-counts").missing == "nan"  # counts: a 0 is a reading
    zeros = load_dataset("synthetic", num_nodes=4, num_days=2, seed=0)
    as_read = load_dataset("synthetic", num_nodes=4, num_days=2, seed=0, missing="nan")
    assert zeros.missing == "zero" and 0.0 < zeros.missing_fraction < 0.2
    assert as_read.missing == "nan" and as_read.missing_fraction == 0.0
    np.testing.assert_array_equal(np.isnan(zeros.values), as_read.values == 0)


# ----------------------------------------------------------------------------------------------
# the loss and the metrics


def _all_test_windows(prepared):
    return prepared.test.batch(torch.arange(len(prepared.test)))


@pytest.mark.parametrize("missing", ["nan", "zero"])
def test_loss_and_metrics_count_real_zeros_only_when_they_are_readings(counts, missing):
    from stgkd.engine.evaluate import evaluate_split

    prepared = prepare(load_quietly(counts, missing=missing), in_steps=6, out_steps=3)
    batch = _all_test_windows(prepared)
    steps = prepared.test.target_steps().numpy()  # (S, H) series step of each target
    truth = count_values()[steps]  # (S, H, N), the counts as recorded
    observed = truth != 0 if missing == "zero" else np.ones_like(truth, dtype=bool)
    np.testing.assert_array_equal(batch.mask.numpy(), observed)
    np.testing.assert_array_equal(batch.y.numpy(), np.where(observed, truth, 0.0))
    assert torch.isfinite(batch.y).all()

    # a constant forecast of 1 passenger: the loss and the metrics average |1 - y| over the observed readings
    pred = torch.ones_like(batch.y, requires_grad=True)
    loss = masked_mae(pred, batch.y, batch.mask)
    want = np.abs(1.0 - truth)[observed].mean()
    assert loss.item() == pytest.approx(want, rel=1e-6)
    loss.backward()
    assert torch.isfinite(pred.grad).all()

    class Constant(torch.nn.Module):
        out_steps = 3

        def forward(self, x):
            return torch.full((x.shape[0], 3, x.shape[2]), (1.0 - prepared.scaler.mean) / prepared.scaler.std)

    metrics = evaluate_split(Constant(), prepared.test, prepared.scaler)
    assert metrics["avg"]["mae"] == pytest.approx(want, rel=1e-6)
    assert metrics["avg"]["rmse"] == pytest.approx(np.sqrt(((1.0 - truth)[observed] ** 2).mean()), rel=1e-6)
    nonzero = observed & (truth != 0)  # a real 0 has no percentage error: MAPE skips it, MAE does not
    assert metrics["avg"]["mape"] == pytest.approx((np.abs(1.0 - truth) / np.where(nonzero, truth, 1))[nonzero].mean())


def test_scaler_is_fit_on_what_the_convention_calls_readings(counts):
    as_counts = prepare(load_quietly(counts, missing="nan"), in_steps=6, out_steps=3)
    as_speeds = prepare(load_quietly(counts), in_steps=6, out_steps=3)
    train = count_values()[: len(as_counts.train) + 6 - 1]
    assert as_counts.scaler.mean == pytest.approx(train.mean(), rel=1e-9)
    assert as_speeds.scaler.mean == pytest.approx(train[train != 0].mean(), rel=1e-9)
    # a real 0 enters the model as a scaled reading; a missing one as the training mean (0 scaled)
    x = as_counts.train.batch(torch.tensor([0])).x[0, :, :, 0]
    np.testing.assert_allclose(x.numpy(), (train[:6] - as_counts.scaler.mean) / as_counts.scaler.std, rtol=1e-5)
    assert (as_speeds.train.batch(torch.tensor([0])).x[0, :, :, 0][torch.from_numpy(train[:6] == 0)] == 0).all()


# ----------------------------------------------------------------------------------------------
# checkpoints and exported students


@pytest.fixture(scope="module")
def trained(counts, tmp_path_factory):
    """A tiny student trained on the counts under each convention, and its exported file."""
    from stgkd.engine import TrainConfig, train_model
    from stgkd.export import export_student

    root = tmp_path_factory.mktemp("runs")
    out = {}
    for missing in ("nan", "zero"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            result = train_model(str(counts), "gcn-gru", root / missing, hparams={"hidden": 4}, in_steps=6,
                                 out_steps=3, missing=missing, progress=False, log=False,
                                 config=TrainConfig(epochs=1, batch_size=16, limit_batches=2, device="cpu", seed=0))
        out[missing] = (result.best_path, export_student(result.best_path, root / f"{missing}.pt"))
    return out


def _history() -> pd.DataFrame:
    """Six daytime hours of the last day: every open stop has a passenger, the closed one none."""
    first = 11 * 24 + 9  # 2024-03-12 09:00
    hist = pd.DataFrame(count_values()[first : first + 6], columns=STOPS,
                        index=pd.date_range("2024-03-12 09:00", periods=6, freq="60min"))
    hist.iloc[:, 0] = [0.0, 2.0, 1.0, 0.0, 3.0, 1.0]  # a stop with real zeros among its counts
    assert (hist.drop(columns=CLOSED) > 0).any().all() and (hist[CLOSED] == 0).all()
    return hist


def test_checkpoint_and_exported_student_record_the_convention(trained):
    from stgkd import Forecaster
    from stgkd.engine.checkpoint import load_checkpoint

    for missing, (ckpt, exported) in trained.items():
        assert load_checkpoint(ckpt)["data"]["missing"] == missing
        fc = Forecaster.load(exported, compile=False)
        assert fc.missing == missing and fc.metadata["missing"] == missing


def test_student_trained_with_real_zeros_forecasts_from_them(trained):
    from stgkd import Forecaster

    fc = Forecaster.load(trained["nan"][1], compile=False)
    hist = _history()
    assert (hist[CLOSED] == 0).all()
    out = fc.predict(hist)  # the closed stop's zeros are readings: nothing is missing
    assert out.shape == (3, 6) and np.isfinite(out.to_numpy()).all()
    gaps = hist.assign(**{STOPS[0]: hist[STOPS[0]].replace(0.0, np.nan)})  # stop0's zeros now missing
    assert not np.allclose(out.to_numpy(), fc.predict(gaps).to_numpy(), rtol=0, atol=1e-4)
    # NaN is still a missing reading; a stop with nothing but NaN cannot be forecast
    with pytest.raises(StgkdError, match=f"no reading in the whole 6-step history.*{CLOSED}"):
        fc.predict(hist.assign(**{CLOSED: np.nan}))


def test_student_trained_with_zeros_as_missing_skips_them(trained):
    from stgkd import Forecaster

    fc = Forecaster.load(trained["zero"][1], compile=False)
    hist = _history()
    with pytest.raises(StgkdError, match=f"no reading in the whole 6-step history.*{CLOSED}"):
        fc.predict(hist)  # the closed stop's zeros are all missing
    hist[CLOSED] = 1.0
    np.testing.assert_allclose(fc.predict(hist).to_numpy(), fc.predict(hist.replace(0.0, np.nan)).to_numpy())


def test_a_checkpoint_keeps_its_convention_when_reloaded(trained, counts):
    from stgkd.engine.evaluate import evaluate_checkpoint
    from stgkd.data.rebuild import prepare_from_meta

    ckpt = trained["nan"][0]
    evaluation = evaluate_checkpoint(ckpt, dataset=str(counts), device="cpu")  # read as counts, no warning
    assert np.isfinite(evaluation.metrics["avg"]["mae"])
    assert evaluate_checkpoint(ckpt, dataset=str(counts), device="cpu", missing="nan").windows == evaluation.windows
    with pytest.raises(DataError, match="trained with missing='nan'.*--missing nan"):
        evaluate_checkpoint(ckpt, dataset=str(counts), device="cpu", missing="zero")
    with pytest.raises(DataError, match="trained with missing='nan'.*loaded with missing='zero'"):
        prepare_from_meta({**_meta(ckpt)}, dataset=load_quietly(counts))
    old = {k: v for k, v in _meta(trained["zero"][0]).items() if k != "missing"}  # written before the entry
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        assert prepare_from_meta(old, dataset=str(counts)).data.missing == "zero"


def _meta(ckpt) -> dict:
    from stgkd.engine.checkpoint import load_checkpoint

    return dict(load_checkpoint(ckpt)["data"])
