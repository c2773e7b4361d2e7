"""What a study leaves behind for deployment: its best feasible student exported to ``OUT/best_student.pt``
(:func:`export_best`, with :func:`stgkd.export.export_student`) and scored on the test split, and the
Pareto front's students scored on the test split for the report (:func:`front_test`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stgkd.errors import StgkdError

__all__ = ["export_best", "front_test"]


def _test_metrics(ckpt: Path, prepared: Any, device: str) -> dict[str, Any]:
    """Test-split metrics by horizon of the student in checkpoint ``ckpt`` on the study's data."""
    from stgkd.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from stgkd.engine.evaluate import evaluate_split

    model = model_from_checkpoint(load_checkpoint(ckpt), device=device)
    test = evaluate_split(model, prepared.test, prepared.scaler, batch_size=64, device=device,
                          interval_minutes=int(prepared.data.interval_minutes))
    return {k: v for k, v in test.items() if k != "per_step"}


def front_test(study: Any, out: Path, prepared: Any, device: str) -> dict[int, dict[str, Any]]:
    """The Pareto front's students scored on the test split (trial number -> metrics by horizon): those
    the previous ``report.json`` in ``out`` scored, the others whose checkpoints are on this machine when
    the data are at hand (a worker that ran no trial has not loaded them)."""
    from tuning.report import front_trials

    try:
        previous = json.loads((out / "report.json").read_text()).get("pareto_front") or []
    except (OSError, ValueError):
        previous = []
    known = {int(t["number"]): t["test"] for t in previous if isinstance(t, dict) and t.get("test")}
    scores = {}
    for trial in front_trials(study):
        ckpt = Path(trial.user_attrs.get("checkpoint", ""))
        if trial.number in known:
            scores[trial.number] = known[trial.number]
        elif prepared is not None and ckpt.is_file():
            scores[trial.number] = _test_metrics(ckpt, prepared, device)
    return scores


def export_best(study: Any, out: Path, prepared: Any, device: str) -> dict[str, Any] | None:
    """Export the best feasible trial's student to ``OUT/best_student.pt`` (and evaluate it on the
    test split when the data are at hand)."""
    from stgkd.export import export_student

    from tuning.report import best_feasible

    best = best_feasible(study)
    if best is None:
        return None
    ckpt = Path(best.user_attrs.get("checkpoint", ""))
    info: dict[str, Any] = {"trial": best.number, "checkpoint": str(ckpt)}
    if not ckpt.is_file():
        info["error"] = (
            f"the checkpoint of trial {best.number} ({ckpt}) is not on this machine (it ran on "
            f"{(best.user_attrs.get('worker') or {}).get('host')}); run this command there, or share OUT"
        )
        return info
    target = out / "best_student.pt"
    sidecar = out / "best_student.json"
    if target.is_file() and sidecar.is_file():  # already exported by an earlier run or another worker
        try:
            previous = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            previous = {}
        if previous.get("trial") == best.number and previous.get("study") == study.study_name:
            return {k: v for k, v in previous.items() if k != "study"}
    try:
        export_student(ckpt, target)
    except StgkdError as exc:
        info["error"] = str(exc)
        return info
    info["path"] = str(target)
    if prepared is not None:
        info["test"] = _test_metrics(ckpt, prepared, device)
    sidecar.write_text(json.dumps({**info, "study": study.study_name}, indent=1, default=str) + "\n")
    return info
