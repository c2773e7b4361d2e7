"""Published results, quoted (not measured here), each with its paper, its table and how it was checked.

Every number in :data:`PUBLISHED` was found, while writing this file, in a public transcription of the
paper's table (the ``checked`` field names it); none was re-derived, rounded or filled in from memory.
Where a model's number for a dataset could not be found it is **absent** here and listed in
:data:`UNVERIFIED` with the reason, so the rendered table says "not verified" instead of guessing.

Protocols behind the quotes (they differ from each other, which is why quotes and measurements sit in
separate tables):

* METR-LA / PEMS-BAY: DCRNN's split (70/10/20 chronological), 12 -> 12 steps, masked MAE / RMSE / MAPE
  at horizons 3 / 6 / 12 (15 / 30 / 60 min).
* PEMS04 / PEMS08: 60/20/20 split, 12 -> 12 steps, traffic flow, metrics averaged over the 12 horizons
  (the AGCRN / STSGCN convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Quote", "PUBLISHED", "UNVERIFIED", "CHECK_MARKS", "LOS_LOOP_SOURCE", "quotes_for"]


@dataclass(frozen=True)
class Quote:
    """One published row: ``metrics`` maps a horizon (``"15min"``, ``"30min"``, ``"60min"`` or
    ``"avg"``) to ``{"mae", "rmse", "mape"}`` (MAPE in percent as printed; ``None`` where the
    transcription gave only some of the columns)."""

    model: str
    dataset: str
    metrics: dict[str, dict[str, float | None]]
    source: str
    table: str
    checked: str
    note: str = ""
    parameters: int | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _h(mae: float, rmse: float | None, mape: float | None) -> dict[str, float | None]:
    return {"mae": mae, "rmse": rmse, "mape": mape}


_GWN = "Wu et al., Graph WaveNet for Deep Spatial-Temporal Graph Modeling, IJCAI 2019"
_MTGNN = "Wu et al., Connecting the Dots: Multivariate Time Series Forecasting with Graph Neural Networks, KDD 2020"
_AGCRN = "Bai et al., Adaptive Graph Convolutional Recurrent Network for Traffic Forecasting, NeurIPS 2020"
_TRANSCRIPT_LA = "[A]"
_TRANSCRIPT_PEMS = "[B]"
#: what the short marks in ``Quote.checked`` stand for
CHECK_MARKS = {
    "[A]": "matches a public text transcription of the METR-LA / PEMS-BAY baseline table (STGCN, DCRNN, Graph "
           "WaveNet, GMAN, MTGNN rows at horizons 3/6/12), found by exact-string search of public repositories; "
           "the Graph WaveNet rows also match several independent READMEs quoting the paper",
    "[B]": "matches a public text transcription of a PEMS04/07/08 baseline table (DCRNN, STGCN, MTGNN, GMAN rows), "
           "found by exact-string search of public repositories",
    "[C]": "matches a public README quoting AGCRN's PEMS04/08 row",
}

PUBLISHED: list[Quote] = [
    # ------------------------------------------------------------------ METR-LA
    Quote("DCRNN", "metr-la", {"15min": _h(2.77, 5.38, 7.30), "30min": _h(3.15, 6.45, 8.80), "60min": _h(3.60, 7.60, 10.50)},
          _GWN, "Table 2 (DCRNN row; DCRNN's own paper, ICLR 2018, Table 2 reports the same)", _TRANSCRIPT_LA),
    Quote("STGCN", "metr-la", {"15min": _h(2.88, 5.74, 7.62), "30min": _h(3.47, 7.24, 9.57), "60min": _h(4.59, 9.40, 12.70)},
          _GWN, "Table 2 (STGCN row)", _TRANSCRIPT_LA),
    Quote("Graph WaveNet", "metr-la", {"15min": _h(2.69, 5.15, 6.90), "30min": _h(3.07, 6.22, 8.37), "60min": _h(3.53, 7.37, 10.01)},
          _GWN, "Table 2", _TRANSCRIPT_LA),
    Quote("MTGNN", "metr-la", {"15min": _h(2.69, 5.18, 6.86), "30min": _h(3.05, 6.17, 8.19), "60min": _h(3.49, 7.23, 9.87)},
          _MTGNN, "Table 3 (single-step horizons 3/6/12)", _TRANSCRIPT_LA),
    Quote("GMAN", "metr-la", {"15min": _h(2.80, 5.55, 7.41), "30min": _h(3.12, 6.49, 8.73), "60min": _h(3.44, 7.35, 10.07)},
          "as quoted by later papers (GMAN's own paper, Zheng et al., AAAI 2020, evaluates on Xiamen and PeMS-BAY)",
          "baseline tables of later work", _TRANSCRIPT_LA,
          note="secondary quote: not in GMAN's paper"),
    # ------------------------------------------------------------------ PEMS-BAY
    Quote("DCRNN", "pems-bay", {"15min": _h(1.38, 2.95, 2.90), "30min": _h(1.74, 3.97, 3.90), "60min": _h(2.07, 4.74, 4.90)},
          _GWN, "Table 2 (DCRNN row)", _TRANSCRIPT_LA),
    Quote("STGCN", "pems-bay", {"15min": _h(1.36, 2.96, 2.90), "30min": _h(1.81, 4.27, 4.17), "60min": _h(2.49, 5.69, 5.79)},
          _GWN, "Table 2 (STGCN row)", _TRANSCRIPT_LA),
    Quote("Graph WaveNet", "pems-bay", {"15min": _h(1.30, 2.74, 2.73), "30min": _h(1.63, 3.70, 3.67), "60min": _h(1.95, 4.52, 4.63)},
          _GWN, "Table 2", _TRANSCRIPT_LA),
    Quote("MTGNN", "pems-bay", {"15min": _h(1.32, 2.79, 2.77), "30min": _h(1.65, 3.74, 3.69), "60min": _h(1.94, 4.49, 4.53)},
          _MTGNN, "Table 3", _TRANSCRIPT_LA),
    Quote("GMAN", "pems-bay", {"15min": _h(1.34, 2.91, 2.86), "30min": _h(1.63, 3.76, 3.68), "60min": _h(1.86, 4.32, 4.37)},
          "as quoted by later papers (GMAN, Zheng et al., AAAI 2020, Table 3 reports PeMS)",
          "baseline tables of later work", _TRANSCRIPT_LA,
          note="secondary quote; not checked against GMAN's own table, which may differ in RMSE/MAPE"),
    # ------------------------------------------------------------------ PEMS04 (averaged over 12 horizons)
    Quote("AGCRN", "pems04", {"avg": _h(19.83, 32.26, 12.97)}, _AGCRN, "Table 2 (PeMSD4)",
          "[C]"),
    Quote("DCRNN", "pems04", {"avg": _h(21.22, 33.44, 14.17)}, _AGCRN, "Table 2 (DCRNN row, PeMSD4)", _TRANSCRIPT_PEMS),
    Quote("STGCN", "pems04", {"avg": _h(21.16, None, None)}, _AGCRN, "Table 2 (STGCN row, PeMSD4)",
          "[B], MAE only: the transcription lists MAE; RMSE / MAPE not verified"),
    Quote("MTGNN", "pems04", {"avg": _h(18.96, 31.05, 13.65)}, "as quoted by later work (MTGNN's paper has no PEMS04)",
          "baseline tables of later work", _TRANSCRIPT_PEMS, note="secondary quote"),
    Quote("GMAN", "pems04", {"avg": _h(19.14, 31.60, 13.19)}, "as quoted by later work (GMAN's paper has no PEMS04)",
          "baseline tables of later work", _TRANSCRIPT_PEMS, note="secondary quote"),
    # ------------------------------------------------------------------ PEMS08
    Quote("AGCRN", "pems08", {"avg": _h(15.95, 25.22, 10.09)}, _AGCRN, "Table 2 (PeMSD8)",
          "[C]"),
    Quote("DCRNN", "pems08", {"avg": _h(16.82, 26.36, 10.92)}, _AGCRN, "Table 2 (DCRNN row, PeMSD8)", _TRANSCRIPT_PEMS),
    Quote("STGCN", "pems08", {"avg": _h(17.50, None, None)}, _AGCRN, "Table 2 (STGCN row, PeMSD8)",
          "[B], MAE only: the transcription lists MAE; RMSE / MAPE not verified"),
    Quote("MTGNN", "pems08", {"avg": _h(15.12, 24.23, 9.65)}, "as quoted by later work (MTGNN's paper has no PEMS08)",
          "baseline tables of later work", _TRANSCRIPT_PEMS, note="secondary quote"),
    Quote("GMAN", "pems08", {"avg": _h(15.31, 24.92, 10.13)}, "as quoted by later work (GMAN's paper has no PEMS08)",
          "baseline tables of later work", _TRANSCRIPT_PEMS, note="secondary quote"),
]

#: (model, dataset) -> why no number is quoted
UNVERIFIED: dict[tuple[str, str], str] = {
    ("AGCRN", "metr-la"): "AGCRN's paper reports PEMS04/08 only; later re-runs differ, none checked",
    ("AGCRN", "pems-bay"): "AGCRN's paper reports PEMS04/08 only",
    ("STID", "metr-la"): "STID's results table (CIKM 2022, Table 2; README figures/main_results.png) is an image; "
                         "no text transcription was found, so no number is quoted",
    ("STID", "pems-bay"): "as for METR-LA: the table could not be read as text",
    ("STID", "pems04"): "as for METR-LA: the table could not be read as text (BasicTS reports STID too)",
    ("STID", "pems08"): "as for METR-LA: the table could not be read as text",
    ("Graph WaveNet", "pems04"): "no transcription with Graph WaveNet on PEMS04 was found",
    ("Graph WaveNet", "pems08"): "no transcription with Graph WaveNet on PEMS08 was found",
}

#: T-GCN's Los-loop table: no text transcription of it was found, so no number is quoted
LOS_LOOP_SOURCE = (
    "Zhao et al., T-GCN: A Temporal Graph Convolutional Network for Traffic Prediction, IEEE T-ITS 21(9), 2020 "
    "(arXiv:1811.05320), Table 1 (Los-loop, 15/30/45/60 min: RMSE, MAE, Accuracy, R², var). The search for a "
    "text transcription of that table found the protocol (official README: seq_len 12, pre_len 3/6/9/12; "
    "evaluation code: 1 - ||Y - Ŷ||_F / ||Y||_F, R², var) but not the numbers, so none are quoted here; read "
    "them from the paper."
)


def quotes_for(dataset: str) -> list[Quote]:
    """The quotes for one dataset (``"metr-la"``, ``"pems-bay"``, ``"pems04"``, ``"pems08"``)."""
    return [q for q in PUBLISHED if q.dataset == dataset]
