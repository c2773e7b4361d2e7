"""``python -m benchmarks.demo_seeds`` in its smoke mode on a tiny synthetic network."""

from __future__ import annotations

import json
import shlex

from benchmarks.demo_seeds import ROLES, main
from stgkd.cli import main as cli

TINY = ["--hidden", "8", "--student-hparams", '{"rank": 3}', "--teacher-hparams",
        '{"residual_channels": 4, "dilation_channels": 4, "skip_channels": 8, "end_channels": 8}']


def test_smoke_runs_each_seed_in_its_own_directory_and_records_the_verdicts(tmp_path):
    data = tmp_path / "syn"
    assert cli(["data", "synth", "--out", str(data), "--nodes", "8", "--days", "3", "--seed", "1"]) == 0
    argv = ["--seeds", "0", "1", "--smoke", "--dataset", str(data), "--device", "cpu", "--threads", "1",
            "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "r"), "--", *TINY]
    assert main(argv) == 0
    (path,) = (tmp_path / "r").glob("demo-seeds-cpu-*-smoke.json")
    report = json.loads(path.read_text())
    assert report["command"] == "python -m benchmarks.demo_seeds " + shlex.join(argv)
    assert report["smoke"] is True and report["date"] and "CPUs" in report["machine"]
    assert len(report["load_average_start"]) == 3 and "--limit-batches" in report["demo_args"]
    assert [s["seed"] for s in report["seeds"]] == [0, 1]

    for s in report["seeds"]:
        out = tmp_path / "w" / f"seed{s['seed']}"
        assert s["out"] == str(out) and s["rc"] == 0 and s["wall_seconds"] > 0
        assert f"--seed {s['seed']}" in s["command"] and f"--out {out}" in s["command"]
        # what the report says is what that seed's own summary.json says
        summary = json.loads((out / "summary.json").read_text())
        assert summary["rows"][1]["model"] == "teacher graph-wavenet"
        for role, row in zip(ROLES, summary["rows"][1:]):
            assert s["rows"][role]["model"] == row["model"]
            assert s["rows"][role]["mae"] == {h: m["mae"] for h, m in row["test"].items()}
        assert s["verdicts"] == summary["gain"]["verdicts"] and s["gain"]["line"] == summary["gain"]["line"]
        assert s["all_hold"] == all(summary["gain"]["verdicts"].values())
        assert s["setting"]["name"] == "recent-days" and (out / "forecasts.png").exists()
        # the smoke's --no-compile: the student's file and the teacher's checkpoint timed uncompiled
        assert [row["latency_ms"]["program"] for row in summary["rows"][1:]] == ["checkpoint", "torch.export",
                                                                               "torch.export"]
    # two seeds, two different runs
    assert report["seeds"][0]["rows"]["plain"]["mae"] != report["seeds"][1]["rows"]["plain"]["mae"]
    assert report["all_hold"] == all(s["all_hold"] for s in report["seeds"])

    md = path.with_suffix(".md").read_text()
    assert "(smoke run)" in md and md.count("| 0 | ") >= 2 and md.count("| 1 | ") >= 2
    assert f"Every verdict holds on every seed: {'yes' if report['all_hold'] else 'no'}" in md
