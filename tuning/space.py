"""The search space of ``python -m tuning.search``, in one readable place.

:data:`DEFAULT_ENTRIES` below is the whole default space; :data:`DEFAULT_SPACE` is the same written as
the YAML a user would write (rendered by :func:`to_yaml`, so the default space needs no YAML library).
``--space FILE`` (YAML or JSON) overrides it entry by entry: an entry in the file replaces the entry
of the same name, entries not in the file keep their defaults. ``--print-space`` prints the default so
it can be copied and edited. Only a YAML ``--space`` file needs PyYAML; a JSON one needs nothing.

Each entry is one of:

* a plain value (``lr: 0.001``) -- fixed, not searched, but recorded with every trial;
* ``null`` (in an override file) -- removes the default entry (the model's own default then applies);
* ``{type: float, low: L, high: H, log: true|false, step: S}`` -- ``trial.suggest_float``;
* ``{type: int, low: L, high: H, log: true|false, step: S}`` -- ``trial.suggest_int``;
* ``{type: categorical, choices: [...]}`` -- ``trial.suggest_categorical``;
* ``{type: fixed, value: V}`` -- the same as the plain value ``V``, with room for ``when``;
* ``{type: copy, of: NAME}`` -- the value another parameter took (defined before it), not searched on
  its own: ``relation_tau: {type: copy, of: tau}`` searches one temperature for both terms.

Any entry may add ``when: {other_param: [values...]}``: it is only suggested when the other
(categorical) parameter took one of those values, e.g. ``graph_op`` only exists for ``gcn-gru``. A plain
value overriding an entry that has a ``when`` keeps it (``graph_op: dense`` still applies to ``gcn-gru``
only).

Names the objective understands (:data:`KNOWN`): the student ``family`` (a registered student model)
with its ``hidden`` width, ``layers`` depth (GRU families), ``graph_op`` and ``adaptive`` (a learned adjacency); the
distillation settings by their :class:`~stgkd.distill.DistillConfig` field names (the ones
``stgkd distill`` takes as flags): the trust temperature ``tau`` (read relative to the teacher's mean
error unless ``tau_relative: false``), the relation temperature ``relation_tau`` (by default a copy of
``tau``: one searched temperature), the staged schedule ``stages`` (e.g. ``{type: categorical,
choices: [null, "hint:0.2,kd:0.6,fine:0.2"]}``), loss weights ``w_out``, ``w_feat``, ``w_rel`` (``w_sup``
is fixed at 1 by default, see below) and ``inherit_adjacency`` (start an adaptive student's adjacency
at the teacher's; give it ``when: {adaptive: [true]}``); the optimiser's ``lr``, ``weight_decay`` and the
``batch_size``. Any other student hyperparameter is passed through with a ``student.`` prefix
(``student.dropout: {...}``, ``student.input_hops: {...}``).

Space files written with the earlier names still load (:data:`ALIASES`): ``w_supervised``,
``w_output``, ``w_feature`` and ``w_relation`` are ``w_sup``, ``w_out``, ``w_feat`` and ``w_rel``, and
``temperature`` is ``tau`` with ``relation_tau`` copying it, as it meant.

Why ``w_sup`` is fixed at 1 and the other weights are free (not a simplex):
the loss is ``w_sup·L_sup + w_out·L_out + w_feat·L_feat + w_rel·L_rel`` and trials are scored by the
masked MAE against the ground truth, so the supervised term is the anchor that should never be
switched off. Fixing it removes the one redundant degree of freedom (the overall scale, which the
learning rate already covers) without a simplex: a simplex over four weights has to be sampled through
a non-linear transform (normalised exponentials / stick breaking), which makes the sampled parameters
correlated, the TPE model harder and the parameter importances unreadable. With ``w_sup = 1`` each
distillation weight reads directly as "how much of this term per unit of supervised loss", each one is
an independent axis, and ``0`` switches a term off. A user who prefers otherwise can search
``w_sup`` too (``w_sup: {type: float, low: 0.1, high: 1.0}``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from stgkd.distill.objective import DistillConfig
from stgkd.errors import ConfigError
from stgkd.settings import flag_fields

__all__ = ["ALIASES", "DEFAULT_ENTRIES", "DEFAULT_SPACE", "KNOWN", "TRAIN_FIELDS", "ParamSpec", "SearchSpace", "load_space", "to_yaml"]

#: The default search space, section by section: ``(heading, ((name, entry, comment), ...))``. This is
#: the single source of the defaults; :data:`DEFAULT_SPACE` writes it out as YAML.
DEFAULT_ENTRIES: tuple[tuple[str, tuple[tuple[str, Any, str], ...]], ...] = (
    ("student architecture (its latency is measured before training)", (
        ("family", {"type": "categorical", "choices": ["stgru", "gru", "gcn-gru", "dcgru"]}, "registered student model"),
        ("hidden", {"type": "int", "low": 16, "high": 128, "step": 16}, "width"),
        ("layers", {"type": "int", "low": 1, "high": 3, "when": {"family": ["gru", "gcn-gru"]}}, "GRU depth"),
        ("graph_op", {"type": "categorical", "choices": ["dense", "gcnconv"], "when": {"family": ["gcn-gru"]}}, ""),
        ("student.order", {"type": "int", "low": 1, "high": 2, "when": {"family": ["dcgru"]}},
         "diffusion hops inside the recurrence"),
        ("student.rank", {"type": "int", "low": 4, "high": 32, "step": 4, "when": {"family": ["stgru"]}},
         "rank of stgru's adaptive graph"),
        ("student.mixing", {"type": "categorical", "choices": ["last", "steps"], "when": {"family": ["stgru"]}},
         "where stgru's graph acts: the last state, or also inside the recurrence"),
    )),
    ("distillation (stgkd.distill.DistillConfig's fields, the flags of stgkd distill)", (
        ("tau", {"type": "float", "low": 0.5, "high": 8.0, "log": True}, "trust temperature of output distillation"),
        ("relation_tau", {"type": "copy", "of": "tau"}, "temperature of the relation term: the same value"),
        ("w_sup", 1.0, "fixed anchor (see tuning/space.py)"),
        ("w_out", {"type": "float", "low": 0.0, "high": 1.0}, "teacher-forecast matching"),
        ("w_feat", {"type": "float", "low": 0.0, "high": 1.0}, "hidden-feature matching"),
        ("w_rel", {"type": "float", "low": 0.0, "high": 1.0}, "node-relation (similarity) matching"),
    )),
    ("optimisation", (
        ("lr", {"type": "float", "low": 3.0e-4, "high": 1.0e-2, "log": True}, ""),
        ("weight_decay", 1.0e-4, "stgkd's default (TrainConfig.weight_decay)"),
        ("batch_size", 64, ""),
    )),
)

#: a string YAML reads back as that string without quotes
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
#: plain words YAML 1.1 (PyYAML) reads as booleans or null
_YAML_WORDS = {"y", "n", "yes", "no", "true", "false", "on", "off", "null"}


def _flow(value: Any) -> str:
    """``value`` (``None``, a bool, number, string, list or mapping of these) as a YAML flow value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        return f"{mantissa}.0e{exponent}" if e and "." not in mantissa else text  # YAML 1.1 floats need a dot
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS:
            return value
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a double-quoted YAML string
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_flow(str(k))}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    raise TypeError(f"no YAML form for {type(value).__name__} {value!r}")


def to_yaml(entries: Mapping[str, Any], *, comments: Mapping[str, str] | None = None) -> str:
    """A space ``{name: entry}`` as YAML, one entry per line (what a user writes in a ``--space`` file),
    each followed by its ``comments[name]`` where there is one. Written without PyYAML; PyYAML's
    ``safe_load`` reads it back to ``entries``."""
    lines = [f"{_flow(str(name))}: {_flow(entry)}" for name, entry in entries.items()]
    notes = [(comments or {}).get(name, "") for name in entries]
    width = max([len(line) for line, note in zip(lines, notes) if note] or [0]) + 3
    return "".join((line.ljust(width) + f"# {note}" if note else line) + "\n" for line, note in zip(lines, notes))


def _render_default() -> str:
    head = ("# Search space of python -m tuning.search. Override any entry with --space FILE (YAML or JSON);\n"
            "# entries not in FILE keep these defaults. A plain value fixes a parameter.\n")
    sections = [
        f"# --- {heading} ---\n"
        + to_yaml({name: entry for name, entry, _ in rows}, comments={name: note for name, _, note in rows})
        for heading, rows in DEFAULT_ENTRIES
    ]
    return head + "".join("\n" + section for section in sections)


#: The default search space as YAML (what ``--print-space`` prints): :data:`DEFAULT_ENTRIES` written out.
DEFAULT_SPACE = _render_default()

#: the optimiser's settings a space may hold (:class:`~stgkd.engine.trainer.TrainConfig`'s fields of these names)
TRAIN_FIELDS = ("lr", "weight_decay", "batch_size")
#: names the objective maps onto the student, the distillation config (every flag field of
#: :class:`~stgkd.distill.DistillConfig`, by its name) and the optimiser
KNOWN = ("family", "hidden", "layers", "graph_op", "adaptive",
         *(f.name for f in flag_fields(DistillConfig)), *TRAIN_FIELDS)
#: earlier names of space entries -> the DistillConfig field each one is (``temperature`` also sets
#: ``relation_tau``, which copies it)
ALIASES = {"temperature": "tau", "w_supervised": "w_sup", "w_output": "w_out", "w_feature": "w_feat",
           "w_relation": "w_rel"}
STUDENT_PREFIX = "student."
_TYPES = ("float", "int", "categorical", "fixed", "copy")
_KEYS = {
    "fixed": {"type", "value", "when"},
    "copy": {"type", "of", "when"},
    "float": {"type", "low", "high", "log", "step", "when"},
    "int": {"type", "low", "high", "log", "step", "when"},
    "categorical": {"type", "choices", "when"},
}


@dataclass(frozen=True)
class ParamSpec:
    """One entry of the space: a fixed value or one Optuna distribution.

    Args:
        name: parameter name (the Optuna parameter name when searched).
        kind: ``"fixed"``, ``"float"``, ``"int"``, ``"categorical"`` or ``"copy"``.
        value: the value of a fixed entry; the name of the parameter a copy takes its value from.
        low, high, log, step: bounds of a float/int entry.
        choices: options of a categorical entry.
        when: ``{param: allowed values}``; the entry exists only when every condition holds.
    """

    name: str
    kind: str
    value: Any = None
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    @property
    def searched(self) -> bool:
        return self.kind not in ("fixed", "copy")

    def active(self, params: Mapping[str, Any]) -> bool:
        """Whether the ``when`` conditions hold for the values chosen so far."""
        return all(params.get(other) in allowed for other, allowed in self.when.items())

    def suggest(self, trial: Any, params: Mapping[str, Any] | None = None) -> Any:
        """Draw this parameter from ``trial`` (an ``optuna.Trial``/``FixedTrial``), or the fixed value, or
        (a copy) the value in ``params`` of the parameter it copies."""
        if self.kind == "fixed":
            return self.value
        if self.kind == "copy":
            return (params or {})[self.value]
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_categorical(self.name, list(self.choices))

    def to_dict(self) -> Any:
        """The entry as it would be written in a space file."""
        if self.kind == "copy":
            out = {"type": "copy", "of": self.value}
            if self.when:
                out["when"] = {k: list(v) for k, v in self.when.items()}
            return out
        if self.kind == "fixed":
            if self.when:
                return {"type": "fixed", "value": self.value, "when": {k: list(v) for k, v in self.when.items()}}
            return self.value
        out: dict[str, Any] = {"type": self.kind}
        if self.kind == "categorical":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high)
            if self.log:
                out["log"] = True
            if self.step is not None:
                out["step"] = self.step
        if self.when:
            out["when"] = {k: list(v) for k, v in self.when.items()}
        return out


def _parse_entry(name: str, raw: Any, where: str) -> ParamSpec:
    if not isinstance(raw, Mapping):
        if isinstance(raw, (list, tuple, set)):
            raise ConfigError(
                f"{where}: {name!r} is a list; write {{type: categorical, choices: [...]}} to search "
                "over it or give a single value to fix it"
            )
        return ParamSpec(name=name, kind="fixed", value=raw)
    kind = raw.get("type")
    if kind not in _TYPES:
        raise ConfigError(f"{where}: {name!r} needs type: float, int, categorical or fixed (got {kind!r})")
    unknown = set(raw) - _KEYS[kind]
    if unknown:
        raise ConfigError(f"{where}: {name!r} ({kind}) has unknown keys {sorted(unknown)}")
    when_raw = raw.get("when") or {}
    if not isinstance(when_raw, Mapping):
        raise ConfigError(f"{where}: {name!r}: 'when' must map a parameter to a list of values")
    when = {
        str(k): tuple(v) if isinstance(v, (list, tuple)) else (v,) for k, v in when_raw.items()
    }
    if kind == "fixed":
        if "value" not in raw:
            raise ConfigError(f"{where}: {name!r}: type fixed needs a 'value'")
        return ParamSpec(name=name, kind="fixed", value=raw["value"], when=when)
    if kind == "copy":
        if not isinstance(raw.get("of"), str):
            raise ConfigError(f"{where}: {name!r}: type copy needs 'of', the name of another parameter")
        return ParamSpec(name=name, kind="copy", value=raw["of"], when=when)
    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            raise ConfigError(f"{where}: {name!r}: categorical needs a non-empty 'choices' list")
        if len(set(map(repr, choices))) != len(choices):
            raise ConfigError(f"{where}: {name!r}: 'choices' has duplicates: {choices}")
        return ParamSpec(name=name, kind=kind, choices=tuple(choices), when=when)

    if "low" not in raw or "high" not in raw:
        raise ConfigError(f"{where}: {name!r}: {kind} needs 'low' and 'high'")
    cast = float if kind == "float" else int
    try:
        low, high = cast(raw["low"]), cast(raw["high"])
        step = None if raw.get("step") is None else cast(raw["step"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {name!r}: low/high/step must be {kind} numbers ({exc})") from None
    if kind == "int" and (raw["low"] != low or raw["high"] != high):
        raise ConfigError(f"{where}: {name!r}: int bounds must be whole numbers, got {raw['low']}, {raw['high']}")
    log = bool(raw.get("log", False))
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ConfigError(f"{where}: {name!r}: need finite low <= high, got low={low}, high={high}")
    if log and low <= 0:
        raise ConfigError(f"{where}: {name!r}: log scale needs low > 0, got low={low}")
    if log and step is not None:
        raise ConfigError(f"{where}: {name!r}: 'step' and 'log: true' cannot be combined")
    if step is not None and step <= 0:
        raise ConfigError(f"{where}: {name!r}: step must be positive, got {step}")
    return ParamSpec(name=name, kind=kind, low=low, high=high, log=log, step=step, when=when)


def _canonical(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``raw`` with the earlier names of :data:`ALIASES` replaced by the current ones, in order;
    ``temperature`` brings ``relation_tau: {type: copy, of: tau}`` (or its removal) along."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = ALIASES.get(str(key), str(key))
        if name in out:
            raise ConfigError(f"{where}: {key!r} and {name!r} name the same parameter; keep {name!r}")
        out[name] = value
        if key == "temperature" and "relation_tau" not in raw:
            out["relation_tau"] = None if value is None else {"type": "copy", "of": "tau"}
    return out


class SearchSpace:
    """An ordered set of :class:`ParamSpec`; :meth:`sample` draws one configuration from a trial.

    Example::

        space = load_space("my_space.yaml")       # default space with my entries on top
        params = space.sample(trial)               # {"family": "gru", "hidden": 32, ..., "lr": 0.001}
    """

    def __init__(self, specs: list[ParamSpec], *, source: str = "default") -> None:
        self.specs = list(specs)
        self.source = source
        self._validate()

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, source: str = "<mapping>") -> "SearchSpace":
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{source}: a search space is a mapping of parameter name to entry")
        return cls([_parse_entry(k, v, source) for k, v in _canonical(raw, source).items()], source=source)

    @classmethod
    def default(cls) -> "SearchSpace":
        return cls.from_mapping({name: entry for _, rows in DEFAULT_ENTRIES for name, entry, _ in rows},
                                source="default")

    def merged(self, overrides: Mapping[str, Any], *, source: str) -> "SearchSpace":
        """This space with the entries of ``overrides`` replacing (or adding to) its own."""
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"{source}: a search space file must hold a mapping of name to entry")
        by_name = {s.name: s for s in self.specs}
        for key, raw in _canonical(overrides, source).items():
            if raw is None:  # `name: null` removes an entry (e.g. to use the model's own default)
                by_name.pop(str(key), None)
                continue
            spec = _parse_entry(str(key), raw, source)
            old = by_name.get(str(key))
            if spec.kind == "fixed" and not spec.when and old is not None and old.when:
                # `graph_op: dense` fixes the value where the entry applies (keeps its `when`)
                spec = ParamSpec(name=spec.name, kind="fixed", value=spec.value, when=old.when)
            by_name[str(key)] = spec
        return SearchSpace(list(by_name.values()), source=f"{self.source} + {source}")

    def _validate(self) -> None:
        names = [s.name for s in self.specs]
        for spec in self.specs:
            if spec.name not in KNOWN and not spec.name.startswith(STUDENT_PREFIX):
                raise ConfigError(
                    f"{self.source}: unknown parameter {spec.name!r}; known: {', '.join(KNOWN)}, "
                    f"or '{STUDENT_PREFIX}<hparam>' for any other student hyperparameter"
                )
            depends = list(spec.when) + ([spec.value] if spec.kind == "copy" else [])
            for other in depends:
                if other not in names or names.index(other) >= names.index(spec.name):
                    raise ConfigError(
                        f"{self.source}: {spec.name!r} depends on {other!r}, which must be defined before it"
                    )
        for required in ("family", "hidden"):
            if required not in names:
                raise ConfigError(f"{self.source}: the space must define {required!r}")
        for name in ("w_sup", "w_out", "w_feat", "w_rel", "weight_decay"):
            spec = self[name] if name in names else None
            if spec is not None and spec.kind == "fixed" and (not isinstance(spec.value, (int, float)) or spec.value < 0):
                raise ConfigError(f"{self.source}: {name} must be a non-negative number, got {spec.value!r}")
            if spec is not None and spec.kind in ("float", "int") and spec.low < 0:
                raise ConfigError(f"{self.source}: {name} must not go below 0, got low={spec.low}")

    def __getitem__(self, name: str) -> ParamSpec:
        for spec in self.specs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(s.name == name for s in self.specs)

    def sample(self, trial: Any) -> dict[str, Any]:
        """Every active parameter, suggested from ``trial`` in order, plus the fixed values."""
        params: dict[str, Any] = {}
        for spec in self.specs:
            if spec.active(params) and (spec.kind != "copy" or spec.value in params):
                params[spec.name] = spec.suggest(trial, params)
        return params

    def holds(self, name: str, value: Any) -> bool:
        """Whether the searched parameter ``name`` can take ``value`` (inside its range, on its step, one
        of its choices)."""
        spec = self[name]
        if spec.kind == "categorical":
            return value in spec.choices
        if spec.kind not in ("int", "float") or isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not spec.low <= value <= spec.high:
            return False
        if spec.kind == "int" and value != int(value):
            return False
        return spec.step is None or math.isclose((value - spec.low) / spec.step,
                                                 round((value - spec.low) / spec.step), abs_tol=1e-9)

    def starting_point(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """Of ``point`` (name -> value), the searched parameters that can take its value and are active
        under the values already taken (a conditional one only once what it depends on is taken): what ``study.enqueue_trial`` is given so that a study's first trial is that point (the
        sampler draws the rest)."""
        chosen: dict[str, Any] = {}
        for spec in self.specs:
            if spec.searched and spec.name in point and spec.active(chosen) and self.holds(spec.name, point[spec.name]):
                chosen[spec.name] = point[spec.name]
        return chosen

    def families(self) -> list[str]:
        """The student families a trial can draw (the ``family`` entry's choices, or its fixed value;
        ``[]`` without one)."""
        if "family" not in self:
            return []
        spec = self["family"]
        return [str(c) for c in spec.choices] if spec.kind == "categorical" else [str(spec.value)]

    def searched_names(self) -> list[str]:
        return [s.name for s in self.specs if s.searched]

    def to_dict(self) -> dict[str, Any]:
        return {s.name: s.to_dict() for s in self.specs}

    def to_yaml(self) -> str:
        return to_yaml(self.to_dict())


def load_space(path: str | Path | None = None) -> SearchSpace:
    """The default space, overridden by the entries of the YAML or JSON file ``path`` if given."""
    space = SearchSpace.default()
    if path is None:
        return space
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--space {path}: no such file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--space {path}: not valid JSON: {exc}") from None
    else:
        try:
            import yaml
        except ImportError:
            raise ConfigError(
                f"--space {path}: reading a YAML space file needs PyYAML, which is not installed; "
                "pip install pyyaml, or write the space as JSON in a .json file"
            ) from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--space {path}: not valid YAML: {exc}") from None
    if raw is None:
        return space
    return space.merged(raw, source=str(path))
