"""CUDA-graph capture probed in a child process, so a model that cannot be captured costs only its own
CUDA-graph figures.

A failed capture can leave PyTorch's caching allocator believing a capture is still under way; in the
process that tried, no further capture is safe (:func:`stgkd.latency.failed_capture`). A benchmark that
captures many models therefore asks a child process first whether each setting (model, batch,
precision) captures (:func:`probe`). The child captures them one after another exactly as
:func:`stgkd.latency.measure` does (the same precision handling, warm-up, capture and one replay) and
stops at the first failed capture; the parent starts a fresh child for the settings left. Only what a
probe captured is captured again, and timed, in the benchmark's own process; the rest is recorded as
``"not capturable: <reason>"`` (:func:`not_capturable`) and timed eagerly.

Models travel to the child as :meth:`~stgkd.nn.ForecastModel.config` (JSON) and their graph as a
``.npy`` file (read with ``allow_pickle=False``): nothing the child loads can run code.

    python -m benchmarks.capture --jobs JOBS.json --out VERDICTS.jsonl   # what probe() runs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from benchmarks.budget import Deadline

__all__ = ["CaptureJob", "probe", "probe_missing", "not_capturable", "model_config", "setting_key", "PROBE_LIMIT_S"]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: the longest one probe process may run (a capture that hangs must not hold a part)
PROBE_LIMIT_S = 180.0
#: exit code of a probe process whose last capture failed (its allocator is not to be trusted)
EXIT_POISONED = 3
NOT_CAPTURABLE = "not capturable"


def not_capturable(reason: str) -> str:
    """What a row says for a setting that was not captured: ``"not capturable: <reason>"``."""
    return f"{NOT_CAPTURABLE}: {reason}"


def model_config(name: str, num_nodes: int, *, in_steps: int = 12, out_steps: int = 12, in_channels: int = 2,
                 **hparams: Any) -> dict[str, Any]:
    """The :meth:`~stgkd.nn.ForecastModel.config` of ``build(name, num_nodes=..., **hparams)`` without
    building it."""
    return {"name": name, "num_nodes": int(num_nodes), "in_steps": int(in_steps), "out_steps": int(out_steps),
            "in_channels": int(in_channels), "hparams": dict(hparams)}


def setting_key(config: dict[str, Any], batch: int, dtype: str) -> str:
    """The name a setting's verdict is filed under: the model's name and hyperparameters, the batch and the
    precision (e.g. ``"gcn-gru hidden=32 b1 bf16"``); not the graph, whose values and size a capture does
    not depend on."""
    hp = ",".join(f"{k}={json.dumps(v, sort_keys=True)}" for k, v in sorted((config.get("hparams") or {}).items()))
    return " ".join(x for x in (config["name"], hp, f"b{int(batch)}", dtype) if x)


@dataclass
class CaptureJob:
    """One setting to probe: the model (its config and graph), the batch and the precision.

    Attributes:
        key: the name its verdict is filed under (:func:`setting_key`).
        config: :meth:`~stgkd.nn.ForecastModel.config` of the model (:func:`model_config`).
        graph: its ``(N, N)`` adjacency (``None`` for a graph-free model).
        batch, dtype: the input batch and precision (a key of :data:`stgkd.precision.DTYPES`).
    """

    key: str
    config: dict[str, Any]
    graph: Any = None
    batch: int = 1
    dtype: str = "fp32"
    meta: dict[str, Any] = field(default_factory=dict)


# ============================================================================ the parent


def _write_jobs(jobs: Sequence[CaptureJob], folder: Path) -> Path:
    """The jobs as JSON, each distinct graph once as ``graph-<i>.npy`` beside them."""
    graphs: dict[int, str] = {}
    rows = []
    for job in jobs:
        name = None
        if job.graph is not None:
            arr = job.graph.detach().cpu().numpy() if hasattr(job.graph, "detach") else np.asarray(job.graph)
            ident = id(job.graph)
            if ident not in graphs:
                graphs[ident] = f"graph-{len(graphs)}.npy"
                np.save(folder / graphs[ident], np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False)
            name = graphs[ident]
        rows.append({"key": job.key, "config": job.config, "graph": name, "batch": int(job.batch),
                     "dtype": job.dtype})
    path = folder / "jobs.json"
    path.write_text(json.dumps(rows))
    return path


def _read_events(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by the child's death
            continue
    return events


def _child_command(jobs_path: Path, out_path: Path, device: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.capture", "--jobs", str(jobs_path), "--out", str(out_path),
            "--device", device]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def probe(jobs: Sequence[CaptureJob], *, device: str = "cuda", deadline: Deadline | None = None,
          log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)) -> dict[str, str | None]:
    """Whether each job's setting captures into a CUDA graph, asked of child processes.

    Returns ``{job.key: None}`` for a setting that captured and ``{job.key: reason}`` for one that did not
    (the capture's error, the child's death, or a time budget spent before it was probed). One child
    runs the jobs in order and stops after a failed capture; a fresh child takes the rest. Past
    ``deadline`` no child starts and a running one is stopped."""
    deadline = deadline or Deadline()
    verdicts: dict[str, str | None] = {}
    todo = list(jobs)
    launches = 0
    with tempfile.TemporaryDirectory(prefix="stgkd-capture-") as tmp:
        folder = Path(tmp)
        while todo and launches <= len(jobs):
            if deadline.expired():
                for job in todo:
                    verdicts[job.key] = "not probed: the time budget was spent"
                break
            launches += 1
            jobs_path = _write_jobs(todo, folder)
            out_path = folder / f"verdicts-{launches}.jsonl"
            limit = min(PROBE_LIMIT_S, max(1.0, deadline.remaining()))
            t0 = time.monotonic()
            try:
                done = subprocess.run(_child_command(jobs_path, out_path, device), cwd=REPO_ROOT, capture_output=True,
                                      text=True, timeout=limit)
                code, stderr = done.returncode, done.stderr
            except subprocess.TimeoutExpired as exc:
                code = None
                stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            started = None
            for event in _read_events(out_path):
                if "verdict" in event:
                    verdicts[event["key"]] = event["verdict"]
                    started = None
                else:
                    started = event["key"]
            if started is not None and started not in verdicts:
                how = (f"stopped after {limit:.0f} s" if code is None else f"exited with {code}")
                verdicts[started] = f"the probe process {how} while capturing it ({_last_line(stderr) or 'no message'})"
            elif code not in (0, EXIT_POISONED) and len(verdicts) < len(jobs):
                # died between settings (or before the first): the next setting is the one that killed it
                nxt = next(job for job in todo if job.key not in verdicts)
                how = f"stopped after {limit:.0f} s" if code is None else f"exited with {code}"
                verdicts[nxt.key] = f"the probe process {how} ({_last_line(stderr) or 'no message'})"
            todo = [job for job in todo if job.key not in verdicts]
            log(f"capture probe {launches}: {len(verdicts)} of {len(jobs)} settings decided in "
                f"{time.monotonic() - t0:.1f} s" + (f", {len(todo)} left" if todo else ""))
    for job in jobs:  # a child that decided nothing twice in a row cannot leave a job undecided forever
        verdicts.setdefault(job.key, "not probed: the probe processes gave no verdict")
    return verdicts


def probe_missing(jobs: Sequence[CaptureJob], known: dict[str, str | None] | None, **kwargs: Any
                  ) -> dict[str, str | None]:
    """The verdicts of ``jobs``: those in ``known`` (an earlier probe's, e.g. another part's) as they are,
    the others probed (:func:`probe`). Returns every job's verdict."""
    known = dict(known or {})
    missing = [job for job in jobs if job.key not in known]
    if missing:
        known.update(probe(missing, **kwargs))
    return {job.key: known[job.key] for job in jobs}


# ============================================================================ the child


def _emit(out, **event: Any) -> None:
    out.write(json.dumps(event) + "\n")
    out.flush()


def _run_jobs(jobs_path: Path, out_path: Path, device: str) -> int:
    """Capture every job in turn, writing ``{"key"}`` before and ``{"key", "verdict"}`` after each; stop
    with :data:`EXIT_POISONED` after a failed capture."""
    import torch

    from stgkd.latency import failed_capture, measure
    from stgkd.nn.registry import from_config

    try:  # registers PGT's recurrent cells and the peers as models too, where PGT is installed
        import stgkd.nn.peers  # noqa: F401
    except ImportError:
        pass
    folder = jobs_path.parent
    jobs = json.loads(jobs_path.read_text())
    with open(out_path, "a", encoding="utf-8") as out:
        for job in jobs:
            _emit(out, key=job["key"])
            graph = np.load(folder / job["graph"], allow_pickle=False) if job["graph"] else None
            try:
                torch.manual_seed(0)
                model = from_config(job["config"], graph)
                measure(model, batch_size=job["batch"], device=device, mode="cuda-graph", dtype=job["dtype"],
                        warmup=1, iters=1, name=job["key"])
                verdict = None
            except Exception as exc:
                verdict = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
            _emit(out, key=job["key"], verdict=verdict)
            if failed_capture() is not None:
                return EXIT_POISONED
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.capture", description=__doc__.splitlines()[0])
    p.add_argument("--jobs", required=True, type=Path, help="the settings to probe (written by probe())")
    p.add_argument("--out", required=True, type=Path, help="JSON lines: each setting as started, then its verdict")
    p.add_argument("--device", default="cuda")
    args = p.parse_args(argv)
    return _run_jobs(args.jobs, args.out, args.device)


if __name__ == "__main__":
    raise SystemExit(main())
