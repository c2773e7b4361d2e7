"""Settings fields as command-line flags: each setting named once, in its dataclass."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, fields

import pytest

from stgkd.cli import build_parser
from stgkd.commands.distill import distill_config_from_args, student_hparams_from_args
from stgkd.distill import DistillConfig
from stgkd.settings import add_flags, flag, flag_fields, flags_given, typed


@dataclass
class _Toy:
    rate: float = flag(0.5, "a rate", aliases=("--old-rate",))
    name: str = flag("a", "a name", choices=lambda: ["a", "b"])
    on: bool = flag(False, "switch on")
    both: bool = flag(True, "either way", negatable=True)
    items: str | list[str] = flag("x", "items", nargs="+", metavar="I")
    plain: int = 3  # not a flag


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser, _Toy)
    return parser.parse_args(list(argv))


def test_flags_come_from_the_fields_and_default_to_not_given() -> None:
    assert [f.name for f in flag_fields(_Toy)] == ["rate", "name", "on", "both", "items"]
    assert flags_given(_Toy, _parse()) == {}
    given = flags_given(_Toy, _parse("--rate", "2", "--name", "b", "--on", "--no-both", "--items", "p", "q"))
    assert given == {"rate": 2.0, "name": "b", "on": True, "both": False, "items": ["p", "q"]}
    assert _Toy(**given).rate == 2.0 and _Toy().plain == 3


def test_a_bool_true_by_default_must_be_negatable() -> None:
    with pytest.raises(TypeError, match="negatable"):
        flag(True, "always on")


def test_aliases_and_choices() -> None:
    assert flags_given(_Toy, _parse("--old-rate", "0.25")) == {"rate": 0.25}
    with pytest.raises(SystemExit):
        _parse("--name", "c")


def _distill_args(*extra: str) -> argparse.Namespace:
    return build_parser("distill").parse_args(["distill", "--teacher", "t.pt", "--out", "o", *extra])


def test_every_distill_flag_is_a_distill_config_field() -> None:
    """``stgkd distill``'s distillation flags are DistillConfig's flag fields, and nothing restates them."""
    names = {f.name for f in fields(DistillConfig)}
    flagged = [f.name for f in flag_fields(DistillConfig)]
    assert set(flagged) <= names and {"tau", "w_sup", "w_out", "w_feat", "w_rel", "relation_tau", "stages",
                                      "augment", "teacher_combine"} <= set(flagged)
    args = _distill_args()
    assert all(getattr(args, name) is None for name in flagged)
    assert distill_config_from_args(args) == {}
    assert DistillConfig.from_dict(distill_config_from_args(args)) == DistillConfig()


def test_distill_flags_set_their_fields() -> None:
    args = _distill_args("--temperature", "inf", "--w-feat", "0", "--no-tau-relative", "--pairs", "default",
                         "--relation-norm", "none", "--inherit-adjacency", "--stages", "kd:0.5,fine:0.5",
                         "--distill-config", '{"output_loss": "huber"}')
    config = DistillConfig.from_dict(distill_config_from_args(args))
    assert math.isinf(config.tau) and config.w_feat == 0.0 and config.tau_relative is False
    assert config.pairs == "default" and config.relation_norm == "none" and config.inherit_adjacency is True
    assert config.stages == "kd:0.5,fine:0.5" and config.output_loss == "huber"
    pairs = DistillConfig.from_dict(distill_config_from_args(_distill_args("--pairs", "graph:skip")))
    assert pairs.pairs == ["graph:skip"]


def test_hidden_is_the_students_width_and_width_its_earlier_name() -> None:
    assert student_hparams_from_args(_distill_args("--hidden", "16")) == {"hidden": 16}
    assert student_hparams_from_args(_distill_args("--width", "8", "--hparams", "rank=4")) == {"hidden": 8, "rank": 4}
    assert student_hparams_from_args(_distill_args("--hparams", "hidden=8")) == {"hidden": 8}
    demo = build_parser("demo").parse_args(["demo", "--width", "8"])
    assert demo.hidden == 8


def test_help_ends_with_the_fields_default() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, _Toy)
    text = " ".join(parser.format_help().split())
    assert "a rate (default: 0.5)" in text and "switch on (default: off)" in text and "either way (default: on)" in text


def test_training_flags_are_train_config_fields() -> None:
    from stgkd.commands.train import train_config_from_args
    from stgkd.engine.trainer import TrainConfig

    args = build_parser("train").parse_args(["train", "--dataset", "d", "--out", "o", "--no-amp", "--deterministic",
                                             "--milestones", "3", "6", "--schedule", "multistep", "--loss", "mse"])
    config = train_config_from_args(args)
    assert config == TrainConfig(amp=False, deterministic=True, milestones=(3, 6), schedule="multistep", loss="mse")
    assert train_config_from_args(build_parser("train").parse_args(["train", "--dataset", "d", "--out", "o"])) \
        == TrainConfig()
    with pytest.raises(SystemExit):  # a distillation's loss is its objective's
        _distill_args("--loss", "mse")


def test_typed_reads_numbers_and_bools_written_as_text() -> None:
    from stgkd.engine.trainer import TrainConfig

    assert typed(TrainConfig, {"lr": "1e-3", "batch_size": "32", "amp": "false", "schedule": "cosine"}) == {
        "lr": 1e-3, "batch_size": 32, "amp": False, "schedule": "cosine"}
    assert typed(DistillConfig, {"tau": "5e-1", "stages": "none", "other": "1"}) == {
        "tau": 0.5, "stages": "none", "other": "1"}
    assert typed(TrainConfig, {"lr": "fast"}) == {"lr": "fast"}  # left for TrainConfig to refuse
