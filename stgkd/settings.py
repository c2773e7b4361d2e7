"""Settings dataclasses whose fields are their own command-line flags.

A field declared with :func:`flag` carries its help text (and, where it has them, its choices and earlier
spellings); :func:`add_flags` turns every such field of a settings class into ``--field-name`` and
:func:`flags_given` reads back the ones a command line set, by field name. So a setting is named once, in
its dataclass, and the CLI, the tuner's parameters and the checkpoints all use that name::

    @dataclass
    class Loss:
        tau: float = flag(1.0, "trust temperature")

    add_flags(parser, Loss)                                   # --tau
    Loss(**flags_given(Loss, parser.parse_args(["--tau", "2"])))
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["add_flags", "flag", "flag_fields", "flags_given", "typed"]

_NO_DEFAULT: Any = dataclasses.MISSING


def flag(default: Any = _NO_DEFAULT, help: str = "", *, type: Callable[[str], Any] | None = None,
         choices: Callable[[], Sequence[str]] | Sequence[str] | None = None, aliases: Sequence[str] = (),
         nargs: str | None = None, metavar: str | None = None, negatable: bool = False) -> Any:
    """A dataclass field that is also a command-line flag ``--<name with dashes>``.

    Args:
        default: the field's default.
        help: the flag's help text.
        type: how the flag's text becomes a value (default: from the default's type; ``str`` for ``None``).
        choices: the accepted values, or a function returning them (read when the parser is built, so a
            registry filled later is seen).
        aliases: earlier spellings of the flag (``"--temperature"``).
        nargs: argparse's ``nargs`` (``"+"`` for a list).
        metavar: the value's name in the help.
        negatable: a bool field gets ``--name/--no-name`` (otherwise ``--name`` sets it true, so a bool that
            is true by default must be negatable).
    """
    if isinstance(default, bool) and default and not negatable:
        raise TypeError("flag: a bool field true by default needs negatable=True (--no-<name> turns it off)")
    meta = {"flag": {"help": help, "type": type, "choices": choices, "aliases": tuple(aliases), "nargs": nargs,
                     "metavar": metavar, "negatable": negatable}}
    return dataclasses.field(default=default, metadata=meta)


def flag_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of ``cls`` declared with :func:`flag`, in declaration order."""
    return [f for f in dataclasses.fields(cls) if "flag" in f.metadata]


def add_flags(group: argparse.ArgumentParser | Any, cls: type, *, exclude: Sequence[str] = ()) -> None:
    """Add a ``--<name>`` flag to ``group`` for every :func:`flag` field of ``cls`` (but those in ``exclude``).
    Every flag defaults to ``None`` (not given), so the dataclass keeps its own default and a resumed run can
    tell which were given."""
    for f in flag_fields(cls):
        if f.name in exclude:
            continue
        spec = f.metadata["flag"]
        names = [f"--{f.name.replace('_', '-')}", *spec["aliases"]]
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": _with_default(spec["help"], f)}
        if isinstance(f.default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction if spec["negatable"] else "store_true"
        else:
            default = f.default if f.default is not _NO_DEFAULT else None
            kwargs["type"] = spec["type"] or (type(default) if default is not None and not isinstance(
                default, (list, tuple)) else str)
            for key in ("nargs", "metavar"):
                if spec[key]:
                    kwargs[key] = spec[key]
            choices = spec["choices"]
            if choices is not None:
                kwargs["choices"] = list(choices() if callable(choices) else choices)
        group.add_argument(*names, **kwargs)


def _with_default(help: str, f: dataclasses.Field) -> str:
    """The help text, ending with the field's default where the text does not say it (a bool flag says "on"
    or "off"; a default of ``None`` means "not set", which the text explains)."""
    if "default:" in help or f.default is _NO_DEFAULT or f.default is None or f.default == ():
        return help
    value = ("on" if f.default else "off") if isinstance(f.default, bool) else f.default
    return f"{help} (default: {value})"


def flags_given(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """``{field name: value}`` for the :func:`flag` fields of ``cls`` that ``args`` set (not ``None``)."""
    return {f.name: getattr(args, f.name) for f in flag_fields(cls) if getattr(args, f.name, None) is not None}


def typed(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (field name -> value) with a text value of a number or bool field read as one: a setting
    from a YAML file may arrive as ``"1e-3"`` (YAML 1.1 reads an exponent without a dot as text) or
    ``"true"``. Other values, and names that are not fields of ``cls``, are returned as they are."""
    kinds = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    out = dict(values)
    for name, value in values.items():
        kind = kinds.get(name, "")
        if not isinstance(value, str) or not kind:
            continue
        text = value.strip().lower()
        if kind.startswith("bool") and text in ("true", "false"):
            out[name] = text == "true"
        elif kind.startswith(("float", "int")):
            try:
                number = float(text)
            except ValueError:
                continue  # left for the dataclass to refuse with its own message
            out[name] = int(number) if kind.startswith("int") and number.is_integer() else number
    return out
