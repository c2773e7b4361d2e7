"""CUDA-graph capture probed in a child process, so a model that cannot be captured costs only its own
CUDA-graph figures.

A failed capture can leave PyTorch's caching allocator believing a capture is still under way, and no further
capture is safe in that process (:func:`stgkd.latency.failed_capture`). So a benchmark first asks child
processes whether each setting (model, batch, precision) captures (:func:`probe`), a fresh child after each
failed capture; only what captured there is captured and timed in its own process (:func:`timed`). Models
travel as :meth:`~stgkd.nn.ForecastModel.config` (JSON), graphs as ``.npy`` read with ``allow_pickle=False``:
nothing the child loads can run code.

    python -m benchmarks.capture --jobs JOBS.json --out VERDICTS.jsonl   # what probe() runs
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from benchmarks.budget import Deadline, last_line, run_child
from benchmarks.record import log as _log
from benchmarks.record import one_line

__all__ = ["CaptureJob", "probe", "probe_missing", "model_config", "setting_key", "timed"]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: the longest one probe process may run (a capture that hangs must not hold a part)
PROBE_LIMIT_S = 180.0
#: exit code of a probe process whose last capture failed (its allocator is not to be trusted)
EXIT_POISONED = 3


def model_config(name: str, num_nodes: int, *, in_steps: int = 12, out_steps: int = 12, in_channels: int = 2,
                 **hparams: Any) -> dict[str, Any]:
    """The :meth:`~stgkd.nn.ForecastModel.config` of ``build(name, num_nodes=..., **hparams)``, unbuilt."""
    return {"name": name, "num_nodes": int(num_nodes), "in_steps": int(in_steps), "out_steps": int(out_steps),
            "in_channels": int(in_channels), "hparams": dict(hparams)}


def setting_key(config: dict[str, Any], batch: int, dtype: str) -> str:
    """The name a setting's verdict is filed under: the model's name and hyperparameters, the batch and the
    precision (e.g. ``"gcn-gru hidden=32 b1 bf16"``); not the graph, whose size a capture does not depend on."""
    hp = ",".join(f"{k}={json.dumps(v, sort_keys=True)}" for k, v in sorted((config.get("hparams") or {}).items()))
    return " ".join(x for x in (config["name"], hp, f"b{int(batch)}", dtype) if x)


@dataclass
class CaptureJob:
    """One setting to probe: ``key`` (:func:`setting_key`), the model's ``config`` (:func:`model_config`), its
    ``(N, N)`` ``graph`` (``None`` for a graph-free model), the ``batch`` and the precision ``dtype``."""

    key: str
    config: dict[str, Any]
    graph: Any = None
    batch: int = 1
    dtype: str = "fp32"


def timed(model: Any, *, batch: int, mode: str, dtype: str = "fp32", verdict: str | None = None, **kwargs: Any):
    """``(LatencyResult, None)`` of :func:`stgkd.latency.measure` at one setting, or ``(None, reason)``: the
    probe's ``verdict`` for a CUDA graph (not tried), or the error. After an error the allocator's cache is
    released, unless a capture failed in this process."""
    from stgkd import latency

    if mode == "cuda-graph" and verdict is not None:
        return None, f"not capturable: {verdict}"
    try:
        return latency.measure(model, batch_size=batch, mode=mode, dtype=dtype, **kwargs), None
    except Exception as exc:  # recorded with the reason; the next setting runs
        latency.release_cached_memory()
        return None, ("not capturable: " if isinstance(exc, latency.CaptureError) else "") + one_line(exc)


# ============================================================================ the parent


def _write_jobs(jobs: Sequence[CaptureJob], folder: Path) -> Path:
    """The jobs as JSON, each distinct graph once as ``graph-<i>.npy`` beside them."""
    graphs: dict[int, str] = {}
    rows = []
    for job in jobs:
        if job.graph is not None and id(job.graph) not in graphs:
            graphs[id(job.graph)] = f"graph-{len(graphs)}.npy"
            arr = job.graph.detach().cpu().numpy() if hasattr(job.graph, "detach") else np.asarray(job.graph)
            np.save(folder / graphs[id(job.graph)], np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False)
        rows.append({"key": job.key, "config": job.config, "graph": graphs.get(id(job.graph)),
                     "batch": int(job.batch), "dtype": job.dtype})
    path = folder / "jobs.json"
    path.write_text(json.dumps(rows))
    return path


def _child_command(jobs_path: Path, out_path: Path, device: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.capture", "--jobs", str(jobs_path), "--out", str(out_path),
            "--device", device]


def probe(jobs: Sequence[CaptureJob], *, device: str = "cuda", deadline: Deadline | None = None,
          log: Callable[[str], None] = _log) -> dict[str, str | None]:
    """``{job.key: None}`` for each setting that captures into a CUDA graph, ``{job.key: reason}`` for one that
    does not (the capture's error, the child's death, the time budget). One child captures the jobs in order
    as :func:`stgkd.latency.measure` does and stops after a failed capture; a fresh child takes the rest.
    Past ``deadline`` no child starts and a running one is stopped."""
    deadline = deadline or Deadline()
    verdicts: dict[str, str | None] = {}
    todo, launches = list(jobs), 0
    with tempfile.TemporaryDirectory(prefix="stgkd-capture-") as tmp:
        while todo and launches <= len(jobs):
            if deadline.expired():
                verdicts.update({job.key: "not probed: the time budget was spent" for job in todo})
                break
            launches += 1
            jobs_path, out_path = _write_jobs(todo, Path(tmp)), Path(tmp) / f"verdicts-{launches}.jsonl"
            limit, t0, stderr = min(PROBE_LIMIT_S, max(1.0, deadline.remaining())), time.monotonic(), []
            code, ended = run_child(_child_command(jobs_path, out_path, device), limit, term_wait=5.0,
                                    cwd=REPO_ROOT, on_line=stderr.append)
            how = f"exited with {code}" if ended == "exited" else f"stopped after {limit:.0f} s"
            last = last_line("".join(stderr)) or "no message"
            started = None
            for line in out_path.read_text().splitlines() if out_path.is_file() else []:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by the child's death
                    continue
                if "verdict" in event:
                    verdicts[event["key"]], started = event["verdict"], None
                else:
                    started = event["key"]
            if started is not None and started not in verdicts:
                verdicts[started] = f"the probe process {how} while capturing it ({last})"
            elif code not in (0, EXIT_POISONED) and len(verdicts) < len(jobs):
                # died between settings (or before the first): the next setting is the one that killed it
                nxt = next(job for job in todo if job.key not in verdicts)
                verdicts[nxt.key] = f"the probe process {how} ({last})"
            todo = [job for job in todo if job.key not in verdicts]
            log(f"capture probe {launches}: {len(verdicts)} of {len(jobs)} settings decided in "
                f"{time.monotonic() - t0:.1f} s" + (f", {len(todo)} left" if todo else ""))
    for job in jobs:  # a child that decided nothing twice in a row cannot leave a job undecided forever
        verdicts.setdefault(job.key, "not probed: the probe processes gave no verdict")
    return verdicts


def probe_missing(jobs: Sequence[CaptureJob], known: dict[str, str | None] | None, **kwargs: Any
                  ) -> dict[str, str | None]:
    """Every job's verdict: those in ``known`` (e.g. another part's) as they are, the others probed."""
    known = dict(known or {})
    missing = list({job.key: job for job in jobs if job.key not in known}.values())
    if missing:
        known.update(probe(missing, **kwargs))
    return {job.key: known[job.key] for job in jobs}


# ============================================================================ the child


def _run_jobs(jobs_path: Path, out_path: Path, device: str) -> int:
    """Capture every job in turn, writing ``{"key"}`` before and ``{"key", "verdict"}`` after each; stop
    with :data:`EXIT_POISONED` after a failed capture."""
    import torch

    from stgkd.latency import failed_capture, measure
    from stgkd.nn.registry import from_config

    import stgkd.nn.peers  # noqa: F401  (registers the peers, which from_config may be asked to build)
    with open(out_path, "a", encoding="utf-8") as out:
        for job in json.loads(jobs_path.read_text()):
            out.write(json.dumps({"key": job["key"]}) + "\n")
            out.flush()
            graph = np.load(jobs_path.parent / job["graph"], allow_pickle=False) if job["graph"] else None
            try:
                torch.manual_seed(0)
                measure(from_config(job["config"], graph), batch_size=job["batch"], device=device, mode="cuda-graph",
                        dtype=job["dtype"], warmup=1, iters=1, name=job["key"])
                verdict = None
            except Exception as exc:
                verdict = one_line(exc)
            out.write(json.dumps({"key": job["key"], "verdict": verdict}) + "\n")
            out.flush()
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
