"""The ``stgkd`` command line: ``main(argv) -> int``, callable in-process.

Each subcommand lives in ``stgkd/commands/<name>.py`` and exposes ``add_arguments(parser)`` and
``run(args) -> int``. The table below is the only place that lists them; a command's module (and so
torch, pandas, ...) is imported only when that command is asked for, so ``stgkd --help`` stays fast.

While a command runs, a warning is printed as one line, ``warning: MESSAGE`` (stgkd's messages start
with the file they are about), instead of Python's ``FILE:LINE: Category: MESSAGE`` and source line.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import traceback
import warnings

from stgkd.errors import StgkdError
from stgkd.version import package_version

#: command name -> (module implementing it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("stgkd.commands.demo", "train a teacher, distill a student, print accuracy and latency"),
    "data": ("stgkd.commands.data", "inspect, synthesise and fetch datasets"),
    "train": ("stgkd.commands.train", "train a registered model (a teacher, or a student on its own)"),
    "distill": ("stgkd.commands.distill", "distill a trained teacher into a student"),
    "evaluate": ("stgkd.commands.evaluate", "masked MAE/RMSE/MAPE of a checkpoint, with a forecast plot"),
    "latency": ("stgkd.commands.latency", "measure forecast latency (CUDA events, or CPU, labelled)"),
    "export": ("stgkd.commands.export", "write a self-contained student file for deployment"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported and given its arguments."""
    parser = argparse.ArgumentParser(
        prog="stgkd",
        description="Traffic forecasting with spatio-temporal GNN teachers distilled into fast students.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"stgkd {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
    return parser


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """``warnings.showwarning`` for the command line: ``warning: MESSAGE`` on one line of stderr."""
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    try:
        print(f"warning: {text}", file=file if file is not None else sys.stderr)
    except OSError:  # stderr closed or gone: nothing to tell
        pass


@contextlib.contextmanager
def one_line_warnings():
    """Print warnings with :func:`show_warning` inside the block; the previous ``showwarning`` after it."""
    previous = warnings.showwarning
    warnings.showwarning = show_warning
    try:
        yield
    finally:
        warnings.showwarning = previous


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return int(exc.code or 0)
    try:
        with one_line_warnings():
            return int(args._run(args) or 0)
    except (StgkdError, FileNotFoundError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"stgkd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stgkd {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
