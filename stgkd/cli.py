"""The ``stgkd`` command line: ``main(argv) -> int``, callable in-process.

Each subcommand lives in ``stgkd/commands/<name>.py`` and exposes ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. The table below is the only place that lists them;
modules are imported only when their command runs, so ``stgkd --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from stgkd.errors import StgkdError

#: command name -> module implementing it
COMMANDS: dict[str, str] = {
    "data": "stgkd.commands.data",
    "train": "stgkd.commands.train",
    "distill": "stgkd.commands.distill",
    "evaluate": "stgkd.commands.evaluate",
    "latency": "stgkd.commands.latency",
    "export": "stgkd.commands.export",
    "demo": "stgkd.commands.demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stgkd",
        description="Traffic forecasting with spatio-temporal GNN teachers distilled into fast students.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return int(exc.code or 0)
    try:
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
