"""`stgkd demo` end to end on a tiny synthetic network."""

import json

from stgkd.cli import main


def test_demo_prints_and_writes_the_table(tmp_path, capsys):
    data_dir = tmp_path / "net"
    assert main(["data", "synth", "--out", str(data_dir), "--nodes", "8", "--days", "3", "--seed", "1"]) == 0
    out = tmp_path / "demo"
    rc = main([
        "demo", "--dataset", str(data_dir), "--out", str(out), "--teacher-epochs", "1", "--student-epochs", "1",
        "--limit-batches", "2", "--latency-iters", "3", "--device", "cpu", "--width", "8",
        "--teacher-hparams", '{"residual_channels": 4, "dilation_channels": 4, "skip_channels": 8, "end_channels": 8}',
    ])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "dcgru w8 distilled" in printed and "measured on cpu" in printed  # the default student
    summary = json.loads((out / "summary.json").read_text())
    names = [r["model"] for r in summary["rows"]]
    assert names == ["last value", "teacher graph-wavenet", "dcgru w8 plain", "dcgru w8 distilled"]
    for row in summary["rows"]:
        assert 0 < row["test"]["avg"]["mae"] < 100
    for row in summary["rows"][1:]:
        assert row["latency_ms"]["device"].startswith("cpu")
        assert row["latency_ms"]["b1"] > 0
    # the student is far smaller than the teacher
    assert summary["rows"][2]["parameters"] < summary["rows"][1]["parameters"]
    assert (out / "student-distilled" / "best.pt").exists()
    # one MAPE unit in every row (a fraction): the ratio MAPE / MAE depends on the data, not the model
    ratios = [row["test"]["avg"]["mape"] / row["test"]["avg"]["mae"] for row in summary["rows"]]
    assert all(0 < row["test"]["avg"]["mape"] < 1 for row in summary["rows"])
    assert max(ratios) < 5 * min(ratios)
