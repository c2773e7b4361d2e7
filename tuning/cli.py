"""The command line of ``python -m tuning.search``: its flags, their types and help.

:func:`build_parser` is the whole interface; :func:`tuning.search.main` parses with it and runs the search.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from stgkd.missing import add_missing_argument
from tuning.teacher import SMALL_TEACHER

__all__ = ["DEFAULT_OUT", "build_parser"]

DEFAULT_OUT = "runs/study"


def _key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` read as ``stgkd train --hparams`` reads its pairs: the value as JSON where it is
    JSON (``8``, ``0.5``, ``1e-3``, ``true``, ``null``, ``[1, 2]``, ``"x"``), else the string itself."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    from stgkd.commands.train import parse_value

    key, value = text.split("=", 1)
    return key.strip(), parse_value(value)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show ``(default: X)`` only where there is a default worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, [], argparse.SUPPRESS) or "(default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tuning.search",
        description=(
            "Search distillation settings and student architectures (temperatures tau and relation_tau, loss weights, student "
            "family, width, depth, learning rate) that minimise the validation masked MAE subject to a "
            "measured inference-latency budget. Students over the budget are recorded as infeasible "
            "without being trained."
        ),
        epilog=(
            "Workers: run the same command (same --study-name and --storage) in several processes or on "
            "several machines to share one study. Resume: run the same command again after a crash; "
            "finished trials are kept, an interrupted one is re-queued. Dashboard: optuna-dashboard "
            "OUT/study.journal (or the --storage URL)."
        ),
        formatter_class=_HelpFormatter,
    )
    data = p.add_argument_group("data and teacher")
    data.add_argument("--dataset", required=False, help="registered dataset name (metr-la, pems-bay, synthetic, ...) or a path in a supported layout (required)")
    data.add_argument("--data-dir", default=None, help="root of registered datasets (default: $STGKD_DATA, else <repo>/datasets)")
    data.add_argument("--data-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                      help="extra argument for the dataset loader, repeatable (e.g. num_nodes=8 for synthetic)")
    add_missing_argument(data, default="the dataset's convention, zero for a path; a --teacher must have been "
                                       "trained with the same")
    data.add_argument("--teacher", default=None,
                      help="teacher checkpoint (best.pt). Omitted: a small Graph WaveNet is trained once into OUT/teacher and reused by later runs and other workers")
    data.add_argument("--teacher-model", default="graph-wavenet", help="model trained when --teacher is omitted")
    data.add_argument("--teacher-epochs", type=_positive_int, default=20, help="epochs of the teacher trained when --teacher is omitted")
    data.add_argument("--teacher-hparam", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                      help=f"hyperparameter of the teacher trained when --teacher is omitted, repeatable (default: {SMALL_TEACHER})")

    lat = p.add_argument_group("latency constraint")
    lat.add_argument("--latency-budget-ms", type=_positive_float, required=False,
                     help="largest median latency (ms per call) a student may have; students above it are not trained (required)")
    lat.add_argument("--latency-batch", type=_positive_int, default=1, help="batch size (windows per call) the latency is measured at")
    lat.add_argument("--latency-mode", default="cuda-graph", choices=["eager", "cuda-graph", "compile"],
                     help="how the student runs when timed; without a GPU cuda-graph falls back to eager (reported)")
    lat.add_argument("--latency-dtype", default="fp32", choices=["fp32", "bf16", "fp16"], help="precision of the timed forward (autocast)")
    lat.add_argument("--latency-device", default="cuda",
                     help="device the latency is measured on; without CUDA the CPU is used and the report says so")
    lat.add_argument("--latency-iters", type=_positive_int, default=100, help="timed calls per measurement (median taken)")
    lat.add_argument("--latency-warmup", type=_positive_int, default=10, help="untimed warm-up calls per measurement")

    st = p.add_argument_group("study")
    st.add_argument("--n-trials", type=_positive_int, default=50,
                    help="target number of finished trials (complete + pruned + infeasible) for the whole study, counting those already in the storage")
    st.add_argument("--timeout", type=_positive_float, default=None, help="stop starting new trials after this many seconds (this process)")
    st.add_argument("--storage", default=None,
                    help="Optuna storage: a journal file path, sqlite:///file.db, postgresql://..., redis://... "
                         "(default: the journal file OUT/study.journal). A password in the URL is shown and stored "
                         "masked; PGPASSWORD or ~/.pgpass keep it out of the command line too")
    st.add_argument("--study-name", default=None, help="study name shared by all workers (default: derived from dataset and latency settings)")
    st.add_argument("--out", default=DEFAULT_OUT, help="study directory: journal, teacher, trial checkpoints, report, best_student.pt")
    st.add_argument("--seed", type=int, default=0, help="seed of the sampler (per trial number, so workers never repeat each other) and of each trial's training (seed + trial number)")
    st.add_argument("--space", default=None, help="YAML or JSON file overriding entries of the default search space (see --print-space)")
    st.add_argument("--no-default-trial", action="store_true",
                    help="do not start a new study from stgkd distill's defaults (by default its first trial is the "
                         "default student with the default loss, as far as the space holds them)")
    st.add_argument("--print-space", action="store_true", help="print the default search space (YAML) and exit")
    st.add_argument("--multi-objective", action="store_true",
                    help="minimise (validation MAE, latency) and report the Pareto front, instead of the MAE alone")
    st.add_argument("--sampler", default="tpe", choices=["tpe", "nsga2"],
                    help="TPE (with constraints; multi-objective TPE with --multi-objective) or NSGA-II (multi-objective only)")
    st.add_argument("--pruner", default="median", choices=["median", "hyperband", "none"],
                    help="stops unpromising trials from their per-epoch validation MAE (single-objective only)")

    tr = p.add_argument_group("training per trial")
    tr.add_argument("--epochs", type=_positive_int, default=30,
                    help="epochs per trial (default: 30, where students converge on the METR-LA week; the pruner "
                         "may stop a trial earlier)")
    tr.add_argument("--limit-batches", type=_positive_int, default=None, help="at most this many training batches per epoch (quick runs)")
    tr.add_argument("--device", default=None, help="training device (default: cuda when available, else cpu)")

    out = p.add_argument_group("output")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    out.add_argument("--no-plots", action="store_true", help="skip the PNG plots of the report")
    out.add_argument("--verbose", action="store_true", help="Optuna's per-trial log lines")
    out.add_argument("--debug", action="store_true", help="full tracebacks on errors")
    return p
