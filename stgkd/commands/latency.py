"""``stgkd latency CKPT_OR_MODEL --batch 1 64 --mode eager cuda-graph --dtype fp32 bf16 [--json out.json]``.

``CKPT_OR_MODEL`` is a training checkpoint (the model inside is timed), an exported student (timed end
to end: raw readings and timestamps in, raw forecast out), or a registered model name (``--nodes``
needed; built with default or ``--hparam`` hyperparameters on a seeded random graph).

An exported student is timed by default as :meth:`stgkd.Forecaster.load` runs it (``--mode load``): the
default torch.export file compiled for this CPU (the program cache), a CUDA graph's replay on CUDA, each file as its
metadata says; ``--mode eager`` times the file's program as it is read, uncompiled.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

HELP = "measure inference latency (median/p90/p99 ms) over batch sizes, modes and precisions"

#: ``--mode`` of the program :meth:`stgkd.Forecaster.load` runs from an exported file
LOAD_MODE = "load"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="CKPT_OR_MODEL", help="checkpoint, exported student, or registered model name")
    parser.add_argument("--batch", type=int, nargs="+", default=[1], help="batch sizes (default: 1)")
    parser.add_argument("--mode", nargs="+", default=None, choices=[LOAD_MODE, "eager", "cuda-graph", "compile"],
                        help=f"{LOAD_MODE}: the program Forecaster.load runs (an exported file only); eager: the "
                             "model or file as it is; cuda-graph: a CUDA graph's replay; compile: torch.compile of it "
                             f"(default: {LOAD_MODE} for an exported file, eager otherwise)")
    parser.add_argument("--dtype", nargs="+", default=["fp32"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--nodes", type=int, default=None, help="number of sensors (for a model name)")
    parser.add_argument("--steps", type=int, default=12, help="input steps for a model name (default: 12)")
    parser.add_argument("--channels", type=int, default=2, help="input channels for a model name (default: 2)")
    parser.add_argument("--hparam", action="append", default=[], metavar="KEY=VALUE",
                        help="hyperparameter for a model name (repeatable), e.g. --hparam hidden=32")
    parser.add_argument("--device", default="auto", help="cuda, cpu, or auto (cuda when available; default)")
    parser.add_argument("--fallback-to-cpu", action="store_true", help="time on the CPU when --device cuda is unavailable")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")


def _parse_hparams(items: list[str]) -> dict[str, Any]:
    from stgkd.commands.train import parse_value
    from stgkd.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--hparam {item!r}: expected KEY=VALUE")
        key, raw = item.split("=", 1)
        out[key.strip()] = parse_value(raw)
    return out


def _target_model(args: argparse.Namespace, device: str, *, as_loaded: bool = False):
    """``(module, label, num_nodes, in_steps, in_channels)`` for the target; an exported file is loaded for
    ``device`` (a torch.export program names its device and must be moved when it is read), or on the CPU
    where that device is absent, so that :func:`~stgkd.latency.measure` says so; ``as_loaded``: as
    :meth:`stgkd.Forecaster.load` runs it (its label names the backend)."""
    import torch

    from stgkd.errors import ConfigError
    from stgkd.engine.checkpoint import model_from_checkpoint
    from stgkd.export import file_kind, load_exported, read_checkpoint
    from stgkd.latency import RawUnitsAdapter

    path = Path(args.target)
    if path.exists():
        kind = file_kind(path)
        if kind == "checkpoint":
            payload = read_checkpoint(path)
            model = model_from_checkpoint(payload, where=str(path))
            return model, f"{path.name}:{payload['model'].get('name')}", None, None, None
        available = torch.device(device).type == "cpu" or torch.cuda.is_available()
        where = device if available else "cpu"
        suffix = ""
        if as_loaded:
            from stgkd import Forecaster

            # not warmed here: measure's warm-up calls are the first ones, and they compile or capture
            fc = Forecaster.load(path, where, cuda_graphs=False, warm_batches=())
            module, meta, suffix = fc.program, fc.metadata, f" [{fc.backend}]"
        else:
            module, meta, kind = load_exported(path, device=where)
        t, n = int(meta["input_steps"]), len(meta["sensor_ids"])
        return (
            RawUnitsAdapter(module, t, int(meta["interval_minutes"])),
            f"{path.name}:{meta['model'].get('name')}{suffix}",
            n,
            t,
            1,
        )
    import stgkd.nn  # noqa: F401  (registers the models)
    from stgkd.latency import random_graph
    from stgkd.nn.registry import MODELS, build

    if args.target not in MODELS:
        raise ConfigError(
            f"{args.target!r}: neither a file nor a registered model (available: {', '.join(MODELS.names())})"
        )
    if not args.nodes:
        raise ConfigError(f"--nodes is needed to time the model {args.target!r} (e.g. --nodes 207)")
    hp = _parse_hparams(args.hparam)
    try:
        model = build(args.target, num_nodes=args.nodes, graph=torch.from_numpy(random_graph(args.nodes)),
                      in_steps=args.steps, in_channels=args.channels, **hp)
    except TypeError as exc:
        raise ConfigError(f"{args.target}: bad --hparam: {exc}") from None
    label = args.target + "".join(f"-{k}{v}" for k, v in hp.items())
    return model, label, None, None, None


def run(args: argparse.Namespace) -> int:
    from stgkd.latency import format_table, measure

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    from stgkd.errors import ConfigError
    from stgkd.formats import EXPORTED_KINDS, file_kind

    exported = Path(args.target).is_file() and file_kind(args.target) in EXPORTED_KINDS
    modes = args.mode or ([LOAD_MODE] if exported else ["eager"])
    if LOAD_MODE in modes and not exported:
        raise ConfigError(f"--mode {LOAD_MODE}: times an exported student as Forecaster.load runs it; "
                          f"{args.target} is not one (use --mode eager or compile)")
    results = []
    for mode in modes:
        model, label, n, t, c = _target_model(args, device, as_loaded=mode == LOAD_MODE)
        timed = mode
        if mode == LOAD_MODE:  # on CUDA, Forecaster replays a CUDA graph
            timed = "cuda-graph" if device.startswith("cuda") and torch.cuda.is_available() else "eager"
        for dtype in args.dtype:
            for batch in args.batch:
                results.append(
                    measure(
                        model,
                        batch_size=batch,
                        num_nodes=n,
                        in_steps=t,
                        in_channels=c,
                        device=device,
                        mode=timed,
                        dtype=dtype,
                        warmup=args.warmup,
                        iters=args.iters,
                        fallback_to_cpu=args.fallback_to_cpu,
                        name=label,
                    )
                )
                results[-1].mode = mode
    first = results[0]
    print(f"# {first.device_kind}: {first.device_name}; torch {first.torch_version}, CUDA {first.cuda_version}; "
          f"warmup {args.warmup}, iters {args.iters}")
    print(format_table(results))
    if args.json is not None:
        from stgkd.files import atomic_write

        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.json, json.dumps({"target": args.target, "results": [r.to_dict() for r in results]}, indent=2))
        print(f"wrote {args.json}")
    return 0
