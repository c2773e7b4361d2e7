"""The run specification: every front end builds one, :func:`stgkd.engine.run` alone carries it out."""

from __future__ import annotations

import pytest
import torch

from stgkd.cli import build_parser
from stgkd.commands.distill import spec_from_args as distill_spec
from stgkd.commands.train import spec_from_args as train_spec
from stgkd.distill import DistillConfig
from stgkd.engine import DataSpec, RunSpec, TrainConfig, run, train_model
from stgkd.errors import ConfigError

CFG = TrainConfig(epochs=1, limit_batches=2, batch_size=8, device="cpu", patience=0)


def test_the_cli_builds_the_spec_its_flags_describe() -> None:
    args = build_parser("train").parse_args(["train", "--dataset", "synthetic", "--model", "gru", "--out", "o",
                                             "--hparams", "hidden=8", "--seasonal", "none", "--lr", "0.01"])
    assert train_spec(args) == RunSpec("gru", {"hidden": 8}, DataSpec("synthetic", seasonal=()), TrainConfig(lr=0.01))
    args = build_parser("distill").parse_args(["distill", "--teacher", "t.pt", "--out", "o", "--hidden", "16",
                                               "--tau", "2", "--epochs", "3"])
    spec = distill_spec(args)
    assert spec.distills and spec.teachers[0].name == "t.pt" and spec.hparams == {"hidden": 16}
    assert spec.distill == DistillConfig(tau=2.0) and spec.train == TrainConfig(epochs=3)


def test_bad_specs_are_refused() -> None:
    with pytest.raises(ConfigError, match="without a teacher"):
        RunSpec("gru", distill=DistillConfig())
    with pytest.raises(ConfigError, match="must be a DistillConfig"):
        RunSpec("gru", teachers=("t.pt",), distill={"tau": 2.0})
    with pytest.raises(ConfigError, match="must map hyperparameter names"):
        RunSpec("gru", DataSpec("synthetic"))
    with pytest.raises(ConfigError, match="in_steps from the teacher's checkpoint"):
        RunSpec("gru", data=DataSpec(in_steps=6), teachers=("t.pt",))


def test_run_of_a_spec_is_train_model(tmp_path) -> None:
    """The recipe is a spec builder: the same run through either gives the same weights."""
    spec = RunSpec("gru", {"hidden": 4}, DataSpec("synthetic", seasonal=()), CFG)
    by_spec = run(spec, tmp_path / "a", progress=False)
    by_recipe = train_model("synthetic", "gru", tmp_path / "b", hparams={"hidden": 4}, seasonal=(), config=CFG,
                            progress=False)
    for a, b in zip(by_spec.model.state_dict().values(), by_recipe.model.state_dict().values()):
        assert torch.equal(a, b)
    assert (tmp_path / "a" / "best.pt").exists() and by_spec.best_val_mae == by_recipe.best_val_mae


def test_resume_keeps_the_runs_settings_and_names_the_ignored_ones(tmp_path, capsys) -> None:
    spec = RunSpec("gru", {"hidden": 4}, DataSpec("synthetic", seasonal=()), CFG)
    run(spec, tmp_path, progress=False)
    more = RunSpec("gru", {"hidden": 4}, DataSpec("synthetic", seasonal=()),
                   TrainConfig(epochs=2, lr=0.5, limit_batches=2, batch_size=8, device="cpu", patience=0))
    resumed = run(more, tmp_path, resume=True, progress=False)
    assert resumed.epochs_run == 2
    assert "ignoring --lr 0.5" in capsys.readouterr().err
    again = run(RunSpec("gru", {"hidden": 4}, DataSpec("synthetic", seasonal=()), TrainConfig(device="cpu")),
                tmp_path, resume=True, progress=False)  # no epochs given: the run's own (2), nothing left to do
    assert again.epochs_run == 2


def test_prepared_data_is_the_specs_data_made_once(tmp_path) -> None:
    spec = RunSpec("gru", {"hidden": 4}, DataSpec("synthetic", seasonal=()), CFG)
    first = run(spec, None, progress=False)
    again = run(RunSpec("gru", {"hidden": 4}, DataSpec("not-read"), CFG), None, progress=False, prepared=first.data)
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="loaded teacher"):
        run(spec, None, progress=False, teacher=first.model)
    run(spec, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="resumes on its own data"):
        run(spec, tmp_path, resume=True, progress=False, prepared=first.data)


def test_resume_names_a_given_setting_even_at_its_default(tmp_path, capsys) -> None:
    """A command line's flags are named when the run keeps its own value, also where the flag gives the
    default (the heuristic without ``given`` cannot tell)."""
    spec = RunSpec("gru", {"hidden": 4}, DataSpec("synthetic", seasonal=()),
                   TrainConfig(epochs=1, limit_batches=2, batch_size=8, device="cpu", patience=0, seed=3))
    run(spec, tmp_path, progress=False)
    capsys.readouterr()
    back = RunSpec("gru", {"hidden": 4}, DataSpec("synthetic", seasonal=()), TrainConfig(epochs=2, device="cpu"))
    run(back, tmp_path, resume=True, progress=False, given={"epochs", "batch_size", "seed"})
    err = capsys.readouterr().err
    assert "ignoring --batch-size 64, --seed 0" in err
