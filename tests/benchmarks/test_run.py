"""``python -m benchmarks.run`` end to end on tiny synthetic data, and its error for missing datasets."""

from __future__ import annotations

import json
import math

import pytest

import stgkd.latency
from benchmarks.run import main


@pytest.fixture(autouse=True)
def idle_machine(monkeypatch):
    """The load average of an idle machine (a busy one is refused: tests/benchmarks/test_idle.py)."""
    monkeypatch.setattr(stgkd.latency, "load_average", lambda: [0.1, 0.1, 0.1])


def test_synthetic_suite_writes_json_and_results_md(tmp_path):
    results = tmp_path / "results"
    md = tmp_path / "RESULTS.md"
    argv = ["--suite", "synthetic", "--tiny", "--epochs", "1", "--seeds", "1", "--limit-batches", "2",
            "--batch-size", "16", "--students", "gcn-gru", "--peers", "pgt-tgcn", "--latency-iters", "2",
            "--latency-warmup", "1", "--latency-batches", "1", "2", "--results-dir", str(results), "--markdown", str(md)]
    assert main(argv) == 0
    files = list(results.glob("synthetic-cpu-*.json"))
    assert len(files) == 1
    rec = json.loads(files[0].read_text())
    assert rec["suite"] == "synthetic" and rec["environment"]["device"] == "cpu"
    assert rec["command"].startswith("python -m benchmarks.run --suite synthetic")
    assert rec["dataset"]["nodes"] == 6 and rec["dataset"]["windows"] == [186, 26, 53]
    kinds = {m["label"]: m["kind"] for m in rec["models"]}
    assert kinds == {"graph-wavenet (teacher)": "teacher", "gcn-gru h32": "student",
                     "gcn-gru h32 + KD": "student+kd", "PGT TGCN": "peer"}
    for m in rec["models"]:
        (seed,) = m["seeds"]
        assert seed["epochs_run"] == 1 and seed["batches_per_epoch"] == 2 and seed["batches_per_full_epoch"] == 12
        for h in ("15min", "30min", "60min", "avg"):
            assert math.isfinite(seed["test"][h]["mae"]) and seed["test"][h]["rmse"] >= seed["test"][h]["mae"]
        assert seed["peak_gpu_mem_mb"] is None
        assert m["parameters"] > 0 and m["flops"] > 0
        assert set(m["latency"]) == {"cpu-eager-b1", "cpu-eager-b2"}
        assert m["latency"]["cpu-eager-b1"]["device_kind"] == "cpu" and m["latency"]["cpu-eager-b1"]["busy"] is False
    assert rec["busy"] is False
    kd = next(m for m in rec["models"] if m["kind"] == "student+kd")
    assert kd["distill"]["w_out"] > 0
    base = rec["baselines"]  # scored on the test windows every model is scored on
    assert base["split"] == "test" and base["windows"] == rec["dataset"]["windows"][2]
    assert "last value" in {s["label"] for s in base["scored"]} and set(base["best"]) == {"15min", "30min", "60min", "avg"}
    text = md.read_text()
    assert "| best baseline | baseline | " + f"{base['best']['15min']['mae']:.2f} ({base['best']['15min']['baseline']})" in text
    assert files[0].name in text
    assert "| gcn-gru h32 + KD | student+kd |" in text and "| PGT TGCN | peer |" in text
    assert "**CPU** eager b1 ms" in text and "not measured" in text


def test_full_dataset_suite_names_missing_files(isolated_data_root, tmp_path, capsys):
    code = main(["--suite", "pems04", "--results-dir", str(tmp_path), "--markdown", str(tmp_path / "R.md")])
    assert code == 2
    err = capsys.readouterr().err
    assert "PEMS04.npz" in err and "PEMS04.csv" in err and str(isolated_data_root / "pems04") in err
    assert "stgkd data fetch pems04" in err
    assert not list(tmp_path.glob("*.json"))


def test_unknown_suite_is_an_error(tmp_path, capsys):
    assert main(["--suite", "nope", "--results-dir", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err


def test_a_time_budget_gives_every_run_its_minimum_passes_and_peers_come_last(monkeypatch):
    """With the budget's shares already spent, every run still trains --min-passes epochs (the passes the
    main body needs, capped at --epochs), and the peers run after every seed's teacher and students."""
    from benchmarks import protocols, run
    from benchmarks.budget import Deadline

    class Spent(Deadline):
        """A deadline that never stops a run from starting, but leaves no time to share."""

        def remaining(self) -> float:
            return 1e-3

        def expired(self) -> bool:
            return False

    lines: list[str] = []
    monkeypatch.setattr(protocols, "log", lines.append)  # the protocols log each run as it starts
    argv = ["--suite", "synthetic", "--tiny", "--epochs", "3", "--min-passes", "2", "--seeds", "2",
            "--limit-batches", "1", "--batch-size", "16", "--students", "gcn-gru", "--peers", "pgt-tgcn",
            "--latency-iters", "1", "--latency-warmup", "1", "--latency-batches", "1"]
    args = run.build_parser().parse_args(argv)
    args.argv, args.seed_list, args.deadline = argv, [0, 1], Spent(1.0)
    rec = run.run_suite(args)
    seeds = [s for m in rec["models"] for s in m["seeds"]]
    assert len(seeds) == 8 and all(s["epochs_run"] == 2 and s["time_limited"] for s in seeds)
    assert rec["budget"]["min_epochs"] == 2
    started = [line for line in lines if line.startswith("seed ") and "test MAE" not in line]
    assert started.index("seed 1: gcn-gru h32 + KD") < started.index("seed 0: peer PGT TGCN")
    assert started[-2:] == ["seed 0: peer PGT TGCN", "seed 1: peer PGT TGCN"]
