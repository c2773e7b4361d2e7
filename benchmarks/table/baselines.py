"""The baselines in RESULTS.md's test MAE tables: the best baseline per horizon as a row, and the marks on
the figures worse than it.

A record (or a run it names) carries the ``baselines`` block of
:meth:`stgkd.engine.baselines.BaselineScores.to_dict`; the comparison is
:func:`stgkd.engine.baselines.compare_with_baselines`, the one every scoring command uses. Nothing here
measures anything.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from benchmarks.table.records import fmt_pm

__all__ = ["WORSE", "WORSE_NOTE", "best_baseline", "worse_horizons", "best_cells", "notes", "mae_cells",
           "baseline_row"]

#: the mark on a test MAE worse than the best baseline at that horizon
WORSE = "†"
WORSE_NOTE = (f"{WORSE} = worse than the best baseline at that horizon (last value, seasonal naive, historical "
              "average or median by time of day or by time of day and weekday, zero for counts; fitted on the "
              "training split, chosen per horizon on validation where the record says so, and scored on the same "
              "test targets).")


def _scores(block: Mapping[str, Any] | None):
    if not isinstance(block, Mapping) or not block.get("scored"):
        return None
    from stgkd.engine.baselines import BaselineScores

    return BaselineScores.from_dict(block)


def best_baseline(block: Mapping[str, Any] | None) -> dict[str, tuple[str, float]]:
    """``{horizon: (label, mae)}`` of the best baseline of a ``baselines`` block (``{}`` without one)."""
    scores = _scores(block)
    return scores.best() if scores is not None else {}


def worse_horizons(block: Mapping[str, Any] | None, maes: Mapping[str, float]) -> set[str]:
    """The horizons at which ``maes`` (``{horizon: mean MAE}``) is above the block's best baseline."""
    from stgkd.engine.baselines import compare_with_baselines

    scores = _scores(block)
    if scores is None:
        return set()
    metrics = {h: {"mae": float(m)} for h, m in maes.items() if m is not None and math.isfinite(float(m))}
    return {s.horizon for s in compare_with_baselines("model", metrics, scores)}


def best_cells(block: Mapping[str, Any] | None, horizons: tuple[str, ...], *, digits: int = 2) -> list[str]:
    """One cell per horizon: the best baseline's MAE and name (``"4.97 (historical median)"``, ``"–"``)."""
    best = best_baseline(block)
    return [f"{best[h][1]:.{digits}f} ({best[h][0]})" if h in best else "–" for h in horizons]


def notes(block: Mapping[str, Any] | None) -> list[str]:
    """The lines under a table with a best-baseline row: what the mark means, and each baseline the data
    could not support, with the reason (``[]`` without a block)."""
    if _scores(block) is None:
        return []
    left = [f"{s.get('label')}: {s.get('left_out')}" for s in block.get("left_out", [])]
    return [WORSE_NOTE + (f" Left out: {'; '.join(left)}." if left else "")]


def mae_cells(block: Mapping[str, Any] | None, maes: Mapping[str, tuple[float, float, int]],
              horizons: Sequence[str], *, digits: int = 2) -> dict[str, str]:
    """``{horizon: cell}``: each ``(mean, spread, n)`` MAE as :func:`~benchmarks.table.records.fmt_pm` writes it,
    marked :data:`WORSE` where it is above the block's best baseline (the cells of every test MAE table)."""
    worse = worse_horizons(block, {h: maes[h][0] for h in horizons if maes[h][2]})
    return {h: fmt_pm(*maes[h], digits=digits) + (f" {WORSE}" if h in worse else "") for h in horizons}


def baseline_row(block: Mapping[str, Any] | None, lead: str, horizons: Sequence[str], tail: str, *, digits: int = 2,
                 per_horizon: int = 1) -> list[str]:
    """The best baseline as the last row of a test MAE table (``lead``, one cell per horizon followed by
    ``per_horizon - 1`` dashes, ``tail``), then a blank line and the :func:`notes`; ``[]`` without a block."""
    if not best_baseline(block):
        return []
    cells = [c for cell in best_cells(block, horizons, digits=digits) for c in (cell, *["–"] * (per_horizon - 1))]
    return [lead + " | ".join(cells) + tail, ""] + notes(block)
