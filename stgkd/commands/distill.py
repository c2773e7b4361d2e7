"""``stgkd distill --teacher runs/gwn/best.pt --student gcn-gru --hidden 32 --tau T
--w-sup A --w-out B --w-feat C --w-rel D --out runs/st``.

Every distillation flag is a :class:`~stgkd.distill.DistillConfig` field of the same name (``--tau`` is
``tau``, ``--relation-tau`` is ``relation_tau``), as are the entries of the tuner's search space
(:mod:`tuning.space`). ``--temperature`` is the earlier spelling of ``--tau``: the trust temperature only.

The dataset, split, window lengths and input features come from the teacher's checkpoint
(``--dataset`` overrides the series; its sensors must be the teacher's). Several ``--teacher`` files
are distilled as one ensemble (``--teacher-combine``; features and relations from ``--feature-teacher``,
the first by default). ``--augment`` adds teacher-labelled perturbed views of the training windows,
which the teacher labels every step. The teacher runs once over
the training windows (its forecasts and paired features are cached); then the student trains on
``w_sup·masked MAE + w_out·output KD + w_feat·feature matching + w_rel·relation KD`` (``--stages``:
some terms in some epochs only). Each epoch logs the student's fidelity to the teacher on the
validation windows; the first and last each term's share of the gradient norm. With
``--w-out 0 --w-feat 0 --w-rel 0`` the student trains plainly, exactly as ``stgkd train`` would.
Training flags are those of ``stgkd train``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stgkd.commands.train import (
    add_seasonal_argument,
    seasonal_from_args,
    add_training_arguments,
    parse_hparams,
    print_result,
    sigterm_as_interrupt,
    train_config_from_args,
    training_flags_given,
)

HELP = "distill a trained teacher into a student"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from stgkd.distill import DistillConfig
    from stgkd.nn.registry import DEFAULT_STUDENT
    from stgkd.settings import add_flags

    parser.add_argument("--teacher", required=True, type=Path, nargs="+", metavar="CKPT",
                        help="teacher checkpoint (best.pt); several: their forecasts combined (--teacher-combine), "
                             "all trained on the same data")
    parser.add_argument("--feature-teacher", type=Path, metavar="CKPT",
                        help="with several teachers, the one whose features and relations the loss reads "
                             "(default: the first)")
    parser.add_argument("--student", default=DEFAULT_STUDENT,
                        help=f"registered student (default: {DEFAULT_STUDENT}, the most accurate and among the cheapest "
                             "students on the METR-LA week)")
    parser.add_argument("--hidden", "--width", dest="hidden", type=int,
                        help="student width, its 'hidden' hyperparameter (--width is its earlier name)")
    parser.add_argument("--hparams", nargs="+", metavar="JSON|KEY=VALUE", help="other student hyperparameters")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="run directory")
    parser.add_argument("--dataset", metavar="NAME_OR_PATH", help="series to use instead of the teacher's")
    add_seasonal_argument(parser)
    k = parser.add_argument_group("distillation (defaults: those of stgkd.distill.DistillConfig)")
    add_flags(k, DistillConfig)
    parser.add_argument("--test", action="store_true",
                        help="also report test metrics of the best weights, beside the baselines'")
    k.add_argument("--distill-config", metavar="JSON", help="other DistillConfig fields as a JSON object")
    add_training_arguments(parser)


def distill_config_from_args(args: argparse.Namespace) -> dict:
    """The DistillConfig fields the flags set (the rest keep their defaults)."""
    from stgkd.distill import DistillConfig
    from stgkd.errors import ConfigError
    from stgkd.settings import flags_given

    fields: dict = {}
    if args.distill_config:
        try:
            fields.update(json.loads(args.distill_config))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--distill-config: invalid JSON ({exc})") from None
    fields.update(flags_given(DistillConfig, args))
    return fields


def student_hparams_from_args(args: argparse.Namespace) -> dict:
    """``--hparams`` with ``--hidden`` (which wins where both set it)."""
    hparams = parse_hparams(args.hparams)
    if args.hidden is not None:
        hparams["hidden"] = args.hidden
    return hparams


def spec_from_args(args: argparse.Namespace):
    """The :class:`~stgkd.engine.spec.RunSpec` ``stgkd distill``'s flags describe."""
    from stgkd.distill import DistillConfig
    from stgkd.engine.spec import DataSpec, RunSpec

    return RunSpec(args.student, student_hparams_from_args(args),
                   DataSpec(args.dataset, args.data_dir, args.missing, seasonal=seasonal_from_args(args.seasonal)),
                   train_config_from_args(args), teachers=tuple(args.teacher), feature_teacher=args.feature_teacher,
                   distill=DistillConfig.from_dict(distill_config_from_args(args)))


def run(args: argparse.Namespace) -> int:
    from stgkd.distill import DistillConfig
    from stgkd.engine.recipes import run

    with sigterm_as_interrupt():
        result = run(spec_from_args(args), args.out, resume=args.resume, overwrite=args.overwrite,
                     progress=not args.no_progress, evaluate_test=args.test, baselines=args.test,
                     given=training_flags_given(args))
    distilled = result.distill is None or DistillConfig.from_checkpoint(result.distill).distills
    print_result(result, what=f"{'distilled' if distilled else 'plain'} {args.student}")
    return 0
