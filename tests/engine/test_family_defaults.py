"""A model family's training defaults: its learning rate (``default_lr``) and the seasonal-lag channels it
reads where the series allows them (``default_seasons``), taken when a run asks for neither, recorded in
the checkpoint, and overridden by an explicit setting."""

from __future__ import annotations

import pytest

from stgkd.commands.train import seasonal_from_args
from stgkd.data.features import default_seasons
from stgkd.data.synthetic import generate
from stgkd.engine import TrainConfig, distill_student, load_checkpoint, train_model
from stgkd.engine.trainer import with_model_lr
from stgkd.errors import ConfigError
from stgkd.nn import MODELS, build

SEASONAL = ["value", "time_of_day", "seasonal_day", "seasonal_day_observed"]
STUDENT = {"hidden": 8, "rank": 3, "node_embed": 2, "tod_embed": 2, "window_embed": 4}


def _cfg(**kw):
    return TrainConfig(**{"epochs": 1, "batch_size": 32, "device": "cpu", "seed": 0, "patience": 0,
                          "limit_batches": 2, **kw})


@pytest.fixture(scope="module")
def three_days():
    data, _ = generate(num_nodes=5, num_days=3, seed=1)
    return data


def test_a_season_is_a_default_only_where_the_series_spans_three_of_it():
    day = 288  # five-minute steps
    assert default_seasons(("day",), 5, 3 * day, 12) == ["day"]
    assert default_seasons(("day",), 5, 3 * day - 1, 12) == []  # most training windows would see no lag
    assert default_seasons(("day", "week"), 15, 30 * 96, 12) == ["day", "week"]
    notes: list[str] = []
    assert default_seasons(("day", "week"), 60, 10 * 24, 12, notes) == ["day"]  # ten days of hourly counts
    assert notes == ["the week season is left out of the default inputs: the series spans 240 steps (10.0 days), "
                     "less than the 3 seasons (504 steps) a default needs"]
    notes.clear()
    assert default_seasons(("day", "week"), 5, 30 * day, 12, notes) == ["day"]  # 2,016 steps back: asked for only
    assert notes == ["the week season is left out of the default inputs: 2016 steps of history per forecast at 5 "
                     "minutes, more than the 1440 a default reaches (ask for it with seasonal / --seasonal week)"]
    assert default_seasons(("day",), 1, 3 * 1440, 12) == ["day"]
    assert default_seasons(("day",), 7, 10 * day, 12) == []  # 1440 minutes is not a whole number of 7-minute steps
    assert default_seasons(("day",), 60, 100, 48) == []  # a 24-step day is shorter than a 48-step window
    assert default_seasons((), 5, 30 * day, 12) == []


def test_the_family_declares_its_defaults():
    assert MODELS.get("stgru").default_lr == 1e-2 and MODELS.get("stgru").default_seasons == ("day",)
    for name in ("graph-wavenet", "gru", "gcn-gru", "dcgru"):
        assert MODELS.get(name).default_lr == 1e-3 and MODELS.get(name).default_seasons == ()


def test_an_unset_learning_rate_is_the_families_and_a_set_one_is_kept():
    stgru = build("stgru", num_nodes=4, **STUDENT)
    gru = build("gru", num_nodes=4, hidden=4)
    assert with_model_lr(TrainConfig(), stgru).lr == 1e-2
    assert with_model_lr(TrainConfig(), gru).lr == 1e-3
    assert with_model_lr(TrainConfig(lr=3e-4), stgru).lr == 3e-4


def test_stgru_trains_at_its_rate_on_yesterdays_readings_by_default(three_days, tmp_path):
    result = train_model(three_days, "stgru", tmp_path / "st", hparams=STUDENT, config=_cfg(), progress=False)
    assert result.data.input_features == SEASONAL
    saved = load_checkpoint(tmp_path / "st" / "best.pt")
    assert saved["data"]["input_features"] == SEASONAL
    assert saved["train_config"]["lr"] == 1e-2 and result.train_config.lr == 1e-2
    first = [h for h in result.history if h["epoch"] == 1][0]
    assert first["lr"] == pytest.approx(1e-2)  # the optimiser ran at it


def test_explicit_settings_override_the_family_defaults(three_days, tmp_path):
    result = train_model(three_days, "stgru", tmp_path / "st", hparams=STUDENT, config=_cfg(lr=2e-3), seasonal=(),
                         progress=False)
    assert result.data.input_features == ["value", "time_of_day"]
    assert load_checkpoint(tmp_path / "st" / "best.pt")["train_config"]["lr"] == 2e-3


def test_other_families_and_short_series_get_no_seasonal_channels(three_days, tmp_path):
    gru = train_model(three_days, "gru", tmp_path / "gru", hparams={"hidden": 4}, config=_cfg(), progress=False)
    assert gru.data.input_features == ["value", "time_of_day"] and gru.train_config.lr == 1e-3
    two_days, _ = generate(num_nodes=5, num_days=2, seed=1)
    short = train_model(two_days, "stgru", tmp_path / "short", hparams=STUDENT, config=_cfg(), progress=False)
    assert short.data.input_features == ["value", "time_of_day"]


def test_a_distilled_stgru_reads_its_seasons_while_the_teacher_keeps_its_channels(three_days, tmp_path):
    teacher = train_model(three_days, "gru", tmp_path / "teacher", hparams={"hidden": 4}, config=_cfg(),
                          progress=False)
    assert teacher.data.input_features == ["value", "time_of_day"]
    result = distill_student(tmp_path / "teacher" / "best.pt", out=tmp_path / "st", dataset=three_days,
                             hparams=STUDENT, config=_cfg(), progress=False, distill={"w_feat": 0.0, "w_rel": 0.0})
    saved = load_checkpoint(tmp_path / "st" / "best.pt")
    assert saved["model"]["name"] == "stgru"  # the default student
    assert result.data.input_features == SEASONAL and saved["train_config"]["lr"] == 1e-2


def test_the_seasonal_flag_reads_none_as_no_channels():
    assert seasonal_from_args(None) is None
    assert seasonal_from_args(["none"]) == ()
    assert seasonal_from_args(["day", "week"]) == ("day", "week")
    with pytest.raises(ConfigError, match="'none' cannot be given with seasons"):
        seasonal_from_args(["none", "day"])


def test_on_hourly_counts_the_weekday_joins_the_inputs_where_the_series_allows_a_week(tmp_path, capsys):
    """Interval-aware defaults: an hourly series of three weeks gets the day of week beside yesterday's
    readings; one of ten days does not; five-minute data never by default (a week is 2,016 steps)."""
    from stgkd.data.synthetic_counts import generate_counts

    three_weeks = generate_counts(num_nodes=6, num_days=21, seed=0, num_routes=2)
    result = train_model(three_weeks, "stgru", None, hparams=STUDENT, config=_cfg(), progress=False)
    assert result.data.input_features == ["value", "time_of_day", "day_of_week", *SEASONAL[2:]]
    ten_days = generate_counts(num_nodes=6, num_days=10, seed=0, num_routes=2)
    result = train_model(ten_days, "stgru", None, hparams=STUDENT, config=_cfg(), progress=False)
    assert result.data.input_features == SEASONAL
    no_weekday = train_model(three_weeks, "stgru", None, hparams=STUDENT, config=_cfg(), progress=False,
                             day_of_week=False)
    assert no_weekday.data.input_features == SEASONAL
    five_minutes, _ = generate(num_nodes=5, num_days=21, seed=1)
    result = train_model(five_minutes, "gru", None, hparams={"hidden": 4}, config=_cfg(), progress=False)
    assert result.data.input_features == ["value", "time_of_day"]
