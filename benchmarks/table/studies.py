"""The tuning studies of the METR-LA week whose Pareto fronts the accuracy-latency chart draws
(:func:`study_fronts`), read from the ``tuning-*.json`` records (``python -m tuning.search`` reports)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.table.frontier import DATASET

__all__ = ["StudyFront", "study_fronts"]


@dataclass(frozen=True)
class StudyFront:
    """The Pareto front of one tuning study of the week (``tuning-*.json``, a ``python -m tuning.search``
    report): per trial ``(trial number, family, width, one-thread CPU latency at batch 1 in ms as the study
    measured it, test MAE at 60 min)``, in order of latency."""

    source: str
    trials: list[tuple[int, str, int | None, float, float]]
    epochs: int | None = None


def study_fronts(results_dir: Path) -> tuple[list[StudyFront], list[tuple[str, str]]]:
    """The tuning studies whose fronts belong on the chart, and ``(record, why not)`` for the others: a
    study of the week that timed its students at batch 1 in eager fp32 on one CPU thread of a machine idle
    at its start and end (``settings.load_average``), and scored its front on the test split."""
    from stgkd.latency import is_busy

    fronts, skipped = [], []
    for path in sorted(Path(results_dir).glob("tuning-*.json")):
        try:
            rec: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        st, name = rec.get("settings") or {}, f"`{path.name}`"
        lat = st.get("latency") or {}
        load = st.get("load_average") or {}
        why = ("not on the week" if not str(st.get("dataset", "")).rstrip("/").endswith(DATASET) else
               "not timed on one CPU thread at batch 1 in eager fp32"
               if (lat.get("device_kind"), lat.get("batch"), lat.get("mode"), lat.get("dtype")) != ("cpu", 1, "eager", "fp32")
               or "(1 threads)" not in str(lat.get("device_name")) else
               "no load average recorded, so no timing of it is a figure" if not (load.get("start") and load.get("end")) else
               "timed on a busy machine" if is_busy(load["start"]) or is_busy(load["end"]) else
               "its front was not scored on the test split"
               if not all((t.get("test") or {}).get("60min") for t in rec.get("pareto_front") or [{}]) else None)
        if why:
            skipped.append((name, why))
            continue
        trials = [(int(t["number"]), str(t["params"].get("family")), t["params"].get("hidden"), float(t["latency_ms"]),
                   float(t["test"]["60min"]["mae"])) for t in rec["pareto_front"]]
        fronts.append(StudyFront(path.name, sorted(trials, key=lambda t: t[3]), st.get("epochs")))
    return fronts, skipped
