"""The benchmark suites: which data, which protocol, which models, and how much training.

Every suite follows DCRNN's protocol (windows, split, masked metrics). Its peers are trained alone under it:
PGT layers behind stgkd's model interface (``dcrnn``, ``stgcn``, ``agcrn``, ``mtgnn``) and PGT's own recurrent
cells as its METR-LA example uses them (``pgt-tgcn``, ``pgt-a3tgcn``, ``pgt-gconvgru``; :mod:`stgkd.nn.peers`).
PGT's own loader z-scores with statistics of the whole series; here every peer gets train-slice statistics and
masked missing readings, like every other model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import stgkd.nn.peers  # noqa: F401  (registers the peers with every other model)
from stgkd.errors import DataError
from stgkd.nn.registry import DEFAULT_STUDENT
from stgkd.registry import Registry

__all__ = ["Suite", "SUITES", "SHARED_WEEK", "DEVICE_WEEK", "STUDENT_REFERENCE", "STUDENT_STRUCTURED", "get_suite",
           "week_folder"]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: the real METR-LA week, outside the repository (never copied into it)
SHARED_WEEK = REPO_ROOT / ".." / "shared" / "data" / "metr-la-week"
#: where the GPU machine finds the week: copied into the ignored .gpu/ folder that travels with the
#: checkout (see benchmarks/README.md)
DEVICE_WEEK = REPO_ROOT / ".gpu" / "data" / "metr-la-week"
WEEK_FILES = ("metr-la-week.h5", "adj_mx.pkl")

#: the teacher and the students every suite compares (hidden widths chosen so the students are ~100x smaller)
TEACHER = ("graph-wavenet", {})
TINY_TEACHER = {"residual_channels": 8, "dilation_channels": 8, "skip_channels": 16, "end_channels": 16}


@dataclass
class Suite:
    """One benchmark setting (``--suite name``). ``load(tiny, week=None)`` returns its data or raises a
    :class:`DataError` naming the missing files (``week``: the real METR-LA week's folder, :func:`week_folder`);
    ``students`` and ``peers`` are ``(label, model name, hparams)``; ``published`` names the dataset whose quotes
    (``results/published-full-datasets.json``) go beside it; ``description`` is its paragraph in RESULTS.md."""

    name: str
    title: str
    load: Callable[..., Any]
    students: list[tuple[str, str, dict[str, Any]]]
    peers: list[tuple[str, str, dict[str, Any]]]
    epochs: int = 20
    limit_batches: int | None = None
    published: str | None = None
    description: str = ""
    protocol: str = "dcrnn"
    teacher: tuple[str, dict[str, Any]] = TEACHER
    tiny_teacher: dict[str, Any] = field(default_factory=lambda: dict(TINY_TEACHER))


SUITES: Registry[Suite] = Registry("benchmark suite")

#: the reference student
STUDENT_REFERENCE = ("gcn-gru h32", "gcn-gru", {"hidden": 32})
#: the best student structure found on the real week (README, "Accuracy on the real METR-LA week"): a
#: learned adjacency, the neighbours' readings diffused 2 hops into the input, a 16-wide sensor embedding
STUDENT_STRUCTURED = ("gcn-gru h32 structured", "gcn-gru",
                      {"hidden": 32, "adaptive": True, "input_hops": 2, "node_embed": 16})
STUDENTS = [STUDENT_REFERENCE, ("gru h32", "gru", {"hidden": 32})]
#: the library's default student at width 32 (:data:`stgkd.nn.DEFAULT_STUDENT`)
STUDENT_DEFAULT = (f"{DEFAULT_STUDENT} h32", DEFAULT_STUDENT, {"hidden": 32})
#: the real-data suites also train the default and the structured student
STUDENTS_REAL = STUDENTS + [STUDENT_DEFAULT, STUDENT_STRUCTURED]
PEERS_ALL = [
    ("PGT TGCN", "pgt-tgcn", {"hidden": 32}),
    ("PGT A3TGCN", "pgt-a3tgcn", {"hidden": 32}),
    ("PGT GConvGRU", "pgt-gconvgru", {"hidden": 32}),
    ("DCRNN (PGT layers)", "dcrnn", {}),
    ("STGCN (PGT layers)", "stgcn", {}),
    ("AGCRN (PGT layers)", "agcrn", {}),
    ("MTGNN (PGT layers)", "mtgnn", {}),
]
#: the peers that fit a CPU budget (the recurrent PGT cells; see RESULTS.md for what was left out)
PEERS_CPU = PEERS_ALL[:3]


def _synthetic(tiny: bool, week: str | Path | None = None):
    from stgkd.data.synthetic import generate

    data, _ = generate(num_nodes=6 if tiny else 64, num_days=1 if tiny else 14, seed=0)
    return data


def week_folder(week: str | Path | None = None) -> Path:
    """The folder of the real METR-LA week: ``week`` when given, else ``$STGKD_WEEK``, else the first of
    ``../shared/data/metr-la-week`` and ``.gpu/data/metr-la-week`` that holds the files (:class:`DataError`
    naming the missing files and the folders looked at otherwise)."""
    if week is not None or os.environ.get("STGKD_WEEK"):
        candidates = [Path(week if week is not None else os.environ["STGKD_WEEK"])]
    else:
        candidates = [SHARED_WEEK, DEVICE_WEEK]
    for folder in candidates:
        if all((folder / n).is_file() for n in WEEK_FILES):
            return folder.resolve()
    folder = candidates[0].resolve()
    missing = [n for n in WEEK_FILES if not (folder / n).is_file()]
    raise DataError(
        f"metr-la-week: missing {', '.join(missing)} in {folder}; the suite reads the real week from --week, "
        "$STGKD_WEEK, ../shared/data/metr-la-week relative to the repository root or .gpu/data/metr-la-week "
        f"(looked in {', '.join(str(c.resolve()) for c in candidates)})"
    )


def _week(tiny: bool, week: str | Path | None = None):
    from stgkd.data.readers import read_dcrnn

    folder = week_folder(week)
    return read_dcrnn(folder / "metr-la-week.h5", folder / "adj_mx.pkl", name="metr-la-week")


def _registered(name: str) -> Callable[..., Any]:
    """The registered dataset ``name`` (:func:`stgkd.data.datasets.load_dataset` names the missing files)."""

    def load(tiny: bool, week: str | Path | None = None):
        from stgkd.data.datasets import load_dataset

        return load_dataset(name)

    return load


SUITES.register("synthetic", Suite(
    name="synthetic", title="Synthetic road network (64 sensors, 14 days)", load=_synthetic,
    students=STUDENTS, peers=PEERS_CPU, epochs=3, limit_batches=20,
    description=(
        "stgkd's seeded simulator (`stgkd.data.synthetic.generate(num_nodes=64, num_days=14, seed=0)`): "
        "rush-hour and incident congestion travelling upstream, 4% missing readings; DCRNN protocol "
        "(70/10/20 chronological split, 12 -> 12 steps, masked metrics). Runs anywhere in minutes."
    ),
))
SUITES.register("metr-la-week", Suite(
    name="metr-la-week", title="METR-LA, first week (207 sensors, 2,016 steps)", load=_week,
    students=STUDENTS_REAL, peers=PEERS_CPU, epochs=30,
    description=(
        "The real first week of METR-LA (2012-03-01 to 03-07, 207 loop detectors, 5 min) from "
        "`../shared/data/metr-la-week` with DCRNN's adjacency; DCRNN protocol (70/10/20 chronological "
        "split of the windows: 1,395 / 199 / 399, z-score fit on the training slice, masked "
        "MAE / RMSE / MAPE at 15 / 30 / 60 min). The week runs Thursday to Wednesday; the test windows "
        "forecast Tuesday 6 March 13:50 to Wednesday 7 March 23:55, the training windows cover Thursday "
        "to Monday (one weekend). A week is 1/17 of METR-LA: numbers are not comparable with the "
        "published full-dataset results."
    ),
))
for _name, _title, _quote in (
    ("metr-la", "METR-LA (full, 207 sensors, 34,272 steps)", "metr-la"),
    ("pems-bay", "PEMS-BAY (full, 325 sensors, 52,116 steps)", "pems-bay"),
    ("pems04", "PEMS04 (307 sensors, flow, 16,992 steps)", "pems04"),
    ("pems08", "PEMS08 (170 sensors, flow, 17,856 steps)", "pems08"),
):
    SUITES.register(_name, Suite(
        name=_name, title=_title, load=_registered(_name), students=STUDENTS_REAL, peers=PEERS_ALL, epochs=100,
        published=_quote,
        description=(
            f"The full {_title.split(' (')[0]} release in its standard layout and split (registered dataset "
            f"`{_name}`), DCRNN protocol; published numbers are quoted beside it."
        ),
    ))


def get_suite(name: str) -> Suite:
    """The registered suite ``name`` (:class:`ConfigError` listing the suites otherwise)."""
    return SUITES.get(name)
