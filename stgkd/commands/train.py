"""``stgkd train --dataset NAME_OR_PATH --model graph-wavenet --out runs/gwn [--hparams ...]``.

Trains a registered model (a teacher, or a student on its own) with the masked MAE in raw units;
writes ``best.pt``, ``last.pt`` (every epoch, atomically), ``log.jsonl`` and ``metrics.json`` into
``--out``. ``--resume`` continues a run from ``last.pt``. Under ``torchrun --nproc_per_node=K -m
stgkd train ...`` the K processes train one model with DistributedDataParallel.

The optimisation flags (shared with ``stgkd distill``) live here as :func:`add_training_arguments`
and :func:`train_config_from_args`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading
from pathlib import Path
from typing import Any

from stgkd.missing import add_missing_argument

HELP = "train a registered model (a teacher, or a student on its own)"


def add_training_arguments(parser: argparse.ArgumentParser, *, loss: bool = False) -> None:
    """Flags common to ``train`` and ``distill``: :class:`~stgkd.engine.trainer.TrainConfig`'s flag fields
    (``--loss`` only with ``loss``: a distillation's loss is its objective's), then where the data and the
    run live. Defaults are ``None`` so that a resumed run can tell which ones were given."""
    from stgkd.engine.trainer import TrainConfig
    from stgkd.settings import add_flags

    g = parser.add_argument_group("training")
    add_flags(g, TrainConfig, exclude=("loss",) if not loss else ())
    g.add_argument("--data-dir", metavar="DIR", help="root of registered datasets (default: $STGKD_DATA or <repo>/datasets)")
    add_missing_argument(g, default="train: the dataset's convention, zero for a path, the run's with --resume; "
                                    "distill: the teacher's, the only one accepted")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    g.add_argument("--overwrite", action="store_true", help="start again in an --out that holds a run")
    g.add_argument("--no-progress", action="store_true", help="no progress bar or per-epoch lines")


def add_seasonal_argument(parser: argparse.ArgumentParser) -> None:
    """``--seasonal day [week]``: seasonal-lag input channels (:func:`stgkd.data.prepare`'s ``seasonal``)."""
    from stgkd.data.windows import SEASONS

    parser.add_argument("--seasonal", nargs="+", choices=[*SEASONS, "none"], metavar="SEASON",
                        help="add seasonal-lag input channels: at input step i the reading one SEASON "
                             f"({', '.join(SEASONS)}) before forecast step i, and whether it was observed; "
                             "'none' for none (default: the model family's where the series spans three "
                             "seasons: day for stgru, none for the others)")


def seasonal_from_args(values: list[str] | None) -> tuple[str, ...] | None:
    """``--seasonal``'s value for the recipes: ``None`` (the family's default), ``()`` for ``none``, or the
    seasons asked for."""
    from stgkd.errors import ConfigError

    if values is None:
        return None
    if "none" in values:
        if len(values) > 1:
            raise ConfigError(f"--seasonal: 'none' cannot be given with seasons ({' '.join(values)})")
        return ()
    return tuple(values)


def train_config_from_args(args: argparse.Namespace):
    """The :class:`TrainConfig` the flags ask for (on ``--resume`` the run keeps its own but ``--epochs`` and
    ``--device``, and names the other flags it ignores: :func:`stgkd.engine.run`)."""
    from stgkd.engine.trainer import TrainConfig
    from stgkd.settings import flags_given

    return TrainConfig(**flags_given(TrainConfig, args))


def training_flags_given(args: argparse.Namespace) -> set[str]:
    """The :class:`~stgkd.engine.trainer.TrainConfig` fields the command line set (a resumed run names those
    it ignores)."""
    from stgkd.engine.trainer import TrainConfig
    from stgkd.settings import flags_given

    return set(flags_given(TrainConfig, args))


def parse_value(raw: str) -> Any:
    """A ``KEY=VALUE`` flag's value: JSON where it is JSON (``8``, ``0.5``, ``1e-3``, ``true``, ``null``,
    ``[1, 2]``, ``"x"``), else the string itself (``dense``). The one reading of every such flag
    (``--hparams``, ``stgkd latency --hparam``, ``tuning.search --data-arg``/``--teacher-hparam``)."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def parse_hparams(items: list[str] | None, *, flag: str = "--hparams") -> dict[str, Any]:
    """``--hparams`` as a JSON object, a path to a ``.json`` file, or ``key=value`` pairs (values
    parsed as JSON when they are: ``16``, ``0.3``, ``true``, ``"dense"``; else taken as strings)."""
    from stgkd.errors import ConfigError

    if not items:
        return {}
    if len(items) == 1 and items[0].lstrip().startswith("{"):
        try:
            value = json.loads(items[0])
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{flag}: invalid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{flag}: JSON must be an object")
        return value
    if len(items) == 1 and items[0].endswith(".json"):
        path = Path(items[0])
        if not path.is_file():
            raise ConfigError(f"{flag}: {path} not found")
        try:
            value = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{flag}: {path}: invalid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{flag}: {path} must hold a JSON object")
        return value
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{flag}: {item!r} is not KEY=VALUE (or pass one JSON object)")
        key, raw = item.split("=", 1)
        out[key.strip().replace("-", "_")] = parse_value(raw)
    return out


def print_result(result, *, what: str) -> None:
    """The closing summary of a train/distill run (rank 0)."""
    from stgkd.engine.evaluate import format_metrics

    if result.rank != 0:
        return
    stop = " (early stop)" if result.stopped_early else ""
    print(f"{what}: {result.epochs_run} epochs{stop}, best epoch {result.best_epoch}, "
          f"val MAE {result.best_val_mae:.4f}")
    if result.best_val:
        print(format_metrics(result.best_val))
    if result.best_path is not None:
        print(f"best checkpoint: {result.best_path}")
    if result.test is not None:
        print("test:\n" + format_metrics(result.test))
    if result.baselines is not None and result.test is not None:
        from stgkd.engine.baselines import report_baselines

        report_baselines(result.baselines, {result.model.registry_name: result.test})


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Treat SIGTERM (a scheduler preempting the job, torchrun stopping its workers) like Ctrl-C, so
    the run saves ``last.pt`` before it exits."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from stgkd.nn.registry import DEFAULT_TEACHER

    parser.add_argument("--dataset", required=True, metavar="NAME_OR_PATH",
                        help="registered dataset (metr-la, pems-bay, synthetic, ...) or a file/folder")
    parser.add_argument("--model", default=DEFAULT_TEACHER, help=f"registered model name (default: {DEFAULT_TEACHER})")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="run directory (checkpoints and logs)")
    parser.add_argument("--hparams", nargs="+", metavar="JSON|KEY=VALUE",
                        help="model hyperparameters: a JSON object, a .json file, or key=value pairs")
    parser.add_argument("--in-steps", type=int, default=12, help="input window (default: 12)")
    parser.add_argument("--out-steps", type=int, default=12, help="forecast horizon (default: 12)")
    parser.add_argument("--day-of-week", action=argparse.BooleanOptionalAction, default=None,
                        help="a day-of-week input feature (default: where the series allows a week-long season: "
                             "three weeks of data at 10 minutes or more)")
    parser.add_argument("--no-time-of-day", action="store_true", help="no time-of-day input feature")
    add_seasonal_argument(parser)
    parser.add_argument("--test", action="store_true",
                        help="also report test metrics of the best weights, beside the baselines'")
    add_training_arguments(parser, loss=True)


def spec_from_args(args: argparse.Namespace):
    """The :class:`~stgkd.engine.spec.RunSpec` ``stgkd train``'s flags describe."""
    from stgkd.engine.spec import DataSpec, RunSpec

    data = DataSpec(args.dataset, args.data_dir, args.missing, args.in_steps, args.out_steps,
                    time_of_day=not args.no_time_of_day, day_of_week=args.day_of_week,
                    seasonal=seasonal_from_args(args.seasonal))
    return RunSpec(args.model, parse_hparams(args.hparams), data, train_config_from_args(args))


def run(args: argparse.Namespace) -> int:
    from stgkd.engine.recipes import run

    with sigterm_as_interrupt():
        result = run(spec_from_args(args), args.out, resume=args.resume, overwrite=args.overwrite,
                     progress=not args.no_progress, evaluate_test=args.test, baselines=args.test,
                     given=training_flags_given(args))
    print_result(result, what=f"trained {args.model}")
    return 0
