"""The search space: defaults, YAML/JSON overrides, conditional entries, validation, sampling."""

from __future__ import annotations

import json
import math
import sys

import optuna
import pytest
import yaml

from stgkd.errors import ConfigError
from tuning.objective import distill_config, student_hparams
from tuning.space import DEFAULT_ENTRIES, DEFAULT_SPACE, KNOWN, SearchSpace, load_space, to_yaml

GCN = {"family": "gcn-gru", "hidden": 32, "layers": 2, "graph_op": "gcnconv", "tau": 2.0,
       "w_out": 0.5, "w_feat": 0.25, "w_rel": 0.125, "lr": 1e-3}


def test_default_space_is_the_documented_yaml():
    space = load_space()
    assert space.to_dict() == yaml.safe_load(DEFAULT_SPACE)
    assert space.searched_names() == ["family", "hidden", "layers", "graph_op", "student.order", "student.rank",
                                      "student.mixing", "tau", "w_out", "w_feat", "w_rel", "lr"]
    assert space.families() == ["stgru", "gru", "gcn-gru", "dcgru"]
    # w_sup is fixed at 1 (the anchor); tau is log-uniform
    assert space["w_sup"].kind == "fixed" and space["w_sup"].value == 1.0
    assert space["tau"].log and space["tau"].low == 0.5 and space["tau"].high == 8.0
    assert {n for n in space.to_dict() if not n.startswith("student.")} <= set(KNOWN)


def test_default_space_text_is_the_default_entries_with_their_comments():
    lines = DEFAULT_SPACE.splitlines()
    for heading, rows in DEFAULT_ENTRIES:
        assert f"# --- {heading} ---" in lines
        for name, _, comment in rows:
            (line,) = [line for line in lines if line.startswith(f"{name}: ")]
            assert line.endswith(f"   # {comment}") if comment else "#" not in line


@pytest.mark.parametrize("entry", [
    {"type": "float", "low": 1e-05, "high": 3.0e-4, "log": True},        # exponents PyYAML reads as floats
    {"type": "float", "low": -2.5, "high": 1e16},
    {"type": "categorical", "choices": [None, True, False, 0, "0", "yes", "no", "on", "Off", "null", "~", "y"]},
    {"type": "categorical", "choices": ["hint:0.2,kd:0.6,fine:0.2", "a b", "#x", "[x]", "{x}", "'q'", '"dq"']},
    {"type": "categorical", "choices": ["gcn-gru", "student.order", "", "1e3", "0x10", "1:20", "- x", "é"]},
    {"type": "fixed", "value": [1, [2.0, "three"]], "when": {"family": ["gru", "gcn-gru"]}},
    float("inf"),
    "plain-string",
])
def test_to_yaml_reads_back_with_pyyaml(entry):
    text = to_yaml({"student.x": entry, "w out": 1})
    assert yaml.safe_load(text) == {"student.x": entry, "w out": 1}


def test_without_pyyaml_default_and_json_spaces_load_and_a_yaml_file_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)  # `import yaml` now raises ImportError
    with pytest.raises(ImportError):
        import yaml as _  # noqa: F401
    assert load_space().to_dict() == SearchSpace.default().to_dict()
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"hidden": {"type": "int", "low": 8, "high": 16, "step": 8}}))
    assert load_space(path)["hidden"].high == 16
    assert load_space().to_yaml() == to_yaml(load_space().to_dict())
    path = tmp_path / "space.yaml"
    path.write_text("hidden: 8\n")
    with pytest.raises(ConfigError) as err:
        load_space(path)
    message = str(err.value)
    assert message.startswith(f"--space {path}: reading a YAML space file needs PyYAML")
    assert "pip install pyyaml" in message and ".json" in message


def test_the_fixed_optimiser_settings_are_stgkds_defaults():
    """A trial trains as ``stgkd distill`` would, but for what the space searches."""
    from stgkd.engine.trainer import TrainConfig

    space = load_space()
    assert space["weight_decay"].value == TrainConfig().weight_decay
    assert space["batch_size"].value == TrainConfig().batch_size


def test_sample_conditional_graph_op():
    space = load_space()
    gcn = space.sample(optuna.trial.FixedTrial(GCN))
    assert gcn == {**GCN, "relation_tau": 2.0, "w_sup": 1.0, "weight_decay": 1e-4, "batch_size": 64}
    gru_params = {k: v for k, v in GCN.items() if k != "graph_op"} | {"family": "gru"}
    gru = space.sample(optuna.trial.FixedTrial(gru_params))
    assert "graph_op" not in gru and gru["family"] == "gru"


def test_sample_maps_onto_student_and_distill_config():
    params = load_space().sample(optuna.trial.FixedTrial(GCN))
    name, hparams = student_hparams(params)
    assert name == "gcn-gru" and hparams == {"hidden": 32, "layers": 2, "graph_op": "gcnconv"}
    cfg = distill_config(params)
    assert (cfg.w_sup, cfg.w_out, cfg.w_feat, cfg.w_rel) == (1.0, 0.5, 0.25, 0.125)
    assert cfg.tau == 2.0 and cfg.relation_tau == 2.0


def test_yaml_override_merges_entry_by_entry(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(
        "hidden: {type: int, low: 8, high: 16, step: 8}\n"
        "lr: 0.002\n"                       # fixed
        "graph_op: dense\n"                 # fixed, keeps 'only for gcn-gru'
        "weight_decay: null\n"              # removed
        "student.dropout: {type: float, low: 0.0, high: 0.5}\n"
    )
    space = load_space(path)
    assert space["hidden"].to_dict() == {"type": "int", "low": 8, "high": 16, "step": 8}
    assert space["lr"].kind == "fixed" and space["lr"].value == 0.002
    assert "weight_decay" not in space
    assert space["tau"].to_dict() == {"type": "float", "low": 0.5, "high": 8.0, "log": True}  # kept
    gru = space.sample(optuna.trial.FixedTrial({"family": "gru", "hidden": 16, "layers": 1, "tau": 1.0, "w_out": 0.0,
                                                "w_feat": 0.0, "w_rel": 0.0, "student.dropout": 0.25}))
    assert "graph_op" not in gru and gru["lr"] == 0.002 and gru["student.dropout"] == 0.25
    assert student_hparams(gru) == ("gru", {"hidden": 16, "layers": 1, "dropout": 0.25})
    gcn = space.sample(optuna.trial.FixedTrial({"family": "gcn-gru", "hidden": 8, "layers": 2, "tau": 1.0,
                                                "w_out": 0.0, "w_feat": 0.0, "w_rel": 0.0,
                                                "student.dropout": 0.0}))
    assert gcn["graph_op"] == "dense"


def test_json_override(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"family": "gru", "layers": {"type": "int", "low": 2, "high": 4}}))
    space = load_space(path)
    assert space["family"].value == "gru"
    assert space["layers"].low == 2 and space["layers"].high == 4


@pytest.mark.parametrize(
    "text, message",
    [
        ("depth: 3\n", "unknown parameter 'depth'"),
        ("temperature: {type: float, low: 0.0, high: 2.0, log: true}\n", "log scale needs low > 0"),
        ("hidden: {type: int, low: 64, high: 16}\n", "low <= high"),
        ("hidden: [16, 32]\n", "is a list"),
        ("family: {type: categorical, choices: []}\n", "non-empty 'choices'"),
        ("lr: {type: float, low: 0.1}\n", "needs 'low' and 'high'"),
        ("lr: {type: float, low: 0.1, high: 1, spread: 2}\n", "unknown keys ['spread']"),
        ("w_output: -1\n", "non-negative"),
        ("graph_op: {type: categorical, choices: [dense], when: {width: [1]}}\n", "depends on 'width'"),
        ("hidden: {type: int, low: 1.5, high: 4}\n", "whole numbers"),
    ],
)
def test_invalid_entries_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_space(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_space(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_space(bad)


def test_tpe_samples_stay_in_bounds():
    space = SearchSpace.default().merged({"hidden": {"type": "int", "low": 8, "high": 24, "step": 8}}, source="test")
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3))
    seen = []
    for _ in range(8):
        trial = study.ask()
        params = space.sample(trial)
        seen.append(params)
        study.tell(trial, params["hidden"] * 0.01 + params["lr"])
    for p in seen:
        assert p["hidden"] in (8, 16, 24)
        assert ("layers" in p) == (p["family"] != "dcgru") and 1 <= p.get("layers", 1) <= 3
        assert ("student.order" in p) == (p["family"] == "dcgru")
        assert 0.5 <= p["tau"] <= 8.0 and 3e-4 <= p["lr"] <= 1e-2
        assert all(0.0 <= p[w] <= 1.0 for w in ("w_out", "w_feat", "w_rel"))
        assert ("graph_op" in p) == (p["family"] == "gcn-gru")
        assert math.isclose(p["w_sup"], 1.0)


def test_adaptive_student_and_inherited_adjacency_can_be_searched(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("adaptive: {type: categorical, choices: [false, true], when: {family: [gcn-gru]}}\n"
                    "inherit_adjacency: {type: categorical, choices: [false, true], when: {adaptive: [true]}}\n")
    space = load_space(path)
    on = space.sample(optuna.trial.FixedTrial({**GCN, "adaptive": True, "inherit_adjacency": True}))
    assert student_hparams(on)[1] == {"hidden": 32, "layers": 2, "graph_op": "gcnconv", "adaptive": True}
    assert distill_config(on).inherit_adjacency is True
    off = space.sample(optuna.trial.FixedTrial({**GCN, "adaptive": False}))
    assert "inherit_adjacency" not in off  # only drawn for an adaptive student
    assert student_hparams(off)[1]["adaptive"] is False and distill_config(off).inherit_adjacency is False


def test_relative_tau_and_stages_map_onto_the_distill_config(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text('tau_relative: {type: categorical, choices: [true, false]}\n'
                    'stages: {type: categorical, choices: [null, "hint:0.2,kd:0.6,fine:0.2"]}\n')
    space = load_space(path)
    params = space.sample(optuna.trial.FixedTrial({**GCN, "tau_relative": False, "stages": "hint:0.2,kd:0.6,fine:0.2"}))
    cfg = distill_config(params)
    assert cfg.tau_relative is False and cfg.stages == "hint:0.2,kd:0.6,fine:0.2" and cfg.tau == 2.0
    plain = distill_config(space.sample(optuna.trial.FixedTrial({**GCN, "tau_relative": True, "stages": None})))
    assert plain.tau_relative is True and plain.stages is None
    assert distill_config(GCN).tau_relative is True  # not in the space: DistillConfig's default


def test_names_are_distill_config_fields_and_earlier_names_still_load(tmp_path):
    from dataclasses import fields

    from stgkd.distill import DistillConfig

    distill_names = {"tau", "relation_tau", "tau_relative", "stages", "inherit_adjacency", "w_sup", "w_out", "w_feat",
                     "w_rel"}
    assert distill_names <= set(KNOWN) and distill_names <= {f.name for f in fields(DistillConfig)}
    # a space file of the earlier vocabulary: temperature set both temperatures, w_output was w_out
    path = tmp_path / "old.yaml"
    path.write_text("temperature: {type: float, low: 1.0, high: 2.0}\nw_output: 0.3\nw_supervised: 1.0\n")
    space = load_space(path)
    assert "temperature" not in space and space["tau"].to_dict() == {"type": "float", "low": 1.0, "high": 2.0}
    assert space["relation_tau"].to_dict() == {"type": "copy", "of": "tau"}
    params = space.sample(optuna.trial.FixedTrial({**GCN, "tau": 1.5}))
    assert params["relation_tau"] == 1.5 and params["w_out"] == 0.3
    cfg = distill_config(params)
    assert (cfg.tau, cfg.relation_tau, cfg.w_out) == (1.5, 1.5, 0.3)
    # a configuration sampled in an old study (its trial's parameters)
    old = distill_config({"temperature": 3.0, "w_output": 0.5, "w_supervised": 1.0, "w_relation": 0.1})
    assert (old.tau, old.relation_tau, old.w_out, old.w_rel) == (3.0, 3.0, 0.5, 0.1)
    # the relation temperature can be searched on its own, and one name twice is refused
    own = SearchSpace.default().merged({"relation_tau": {"type": "float", "low": 0.1, "high": 1.0}}, source="t")
    assert "relation_tau" in own.searched_names()
    with pytest.raises(ConfigError, match="name the same parameter"):
        SearchSpace.default().merged({"w_out": 0.1, "w_output": 0.2}, source="t")


def test_dcgru_trials_build_without_gru_depth():
    from stgkd.nn import build

    space = load_space()
    params = space.sample(optuna.trial.FixedTrial({"family": "dcgru", "hidden": 16, "student.order": 1, "tau": 1.0,
                                                   "w_out": 0.5, "w_feat": 0.1, "w_rel": 0.0, "lr": 1e-3}))
    assert "layers" not in params and "graph_op" not in params
    name, hparams = student_hparams(params)
    assert (name, hparams) == ("dcgru", {"hidden": 16, "order": 1})
    assert build(name, num_nodes=4, **hparams).num_parameters() > 0


def test_a_study_starts_from_stgkd_distills_defaults():
    from tuning.objective import default_point

    space = SearchSpace.default()
    start = space.starting_point(default_point(207))
    # the default student (stgru w32, rank min(16, N), mixing on the last state) at its family's learning
    # rate, with DistillConfig's weights and trust temperature; relation_tau copies tau, so is not enqueued
    assert start == {"family": "stgru", "hidden": 32, "student.rank": 16, "student.mixing": "last", "tau": 1.0,
                     "w_out": 1.0, "w_feat": 0.1, "w_rel": 0.1, "lr": 1e-2}
    # what a trial of those parameters builds and trains is what `stgkd distill` does by default
    name, hparams = student_hparams(start)
    assert (name, hparams) == ("stgru", {"hidden": 32, "rank": 16, "mixing": "last"})
    cfg = distill_config(start)
    assert (cfg.w_out, cfg.w_feat, cfg.w_rel, cfg.tau) == (1.0, 0.1, 0.1, 1.0)
    # a value the space cannot take is left to the sampler: rank 6 on 6 sensors is off the 4..32 step-4 grid
    assert "student.rank" not in space.starting_point(default_point(6))
    # parameters of another family are not active; a narrowed space keeps only what it holds
    narrowed = space.merged({"family": {"type": "categorical", "choices": ["gru", "gcn-gru"]},
                             "hidden": {"type": "int", "low": 4, "high": 8, "step": 4}}, source="test")
    assert narrowed.starting_point(default_point(207)) == {"tau": 1.0, "w_out": 1.0, "w_feat": 0.1, "w_rel": 0.1,
                                                           "lr": 1e-2}


def test_holds_checks_range_step_and_choices():
    space = SearchSpace.default()
    assert space.holds("hidden", 48) and not space.holds("hidden", 40) and not space.holds("hidden", 144)
    assert space.holds("lr", 1e-2) and not space.holds("lr", 2e-2)
    assert space.holds("family", "dcgru") and not space.holds("family", "graph-wavenet")
    assert not space.holds("hidden", True) and not space.holds("w_out", "1")
