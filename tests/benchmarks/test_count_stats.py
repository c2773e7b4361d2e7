"""benchmarks.count_stats: the table it prints and the record it writes."""

from __future__ import annotations

import json

from benchmarks.count_stats import main
from stgkd.data.count_stats import BUS_NETWORK


def test_it_compares_every_figure_and_writes_the_record(tmp_path, capsys):
    assert main(["--seeds", "0", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("count-stats-*.json")
    report = json.loads(path.read_text())
    assert report["seeds"] == [0] and report["command"].startswith("python -m benchmarks.count_stats")
    assert {"date", "machine", "load_average_start", "load_average_end"} <= set(report)
    rows = {r["statistic"]: r for r in report["rows"]}
    assert list(rows) == list(BUS_NETWORK)
    for key, row in rows.items():
        (sim,), (diff,) = row["simulated"], row["relative_difference"]
        assert diff == (sim - BUS_NETWORK[key]) / BUS_NETWORK[key] and row["within"] == (abs(diff) <= 0.2)
    assert rows["stops"]["simulated"] == [675] and rows["links"]["simulated"] == [690]
    assert report["all_within"] == all(r["within"] for r in rows.values())
    printed = capsys.readouterr().out
    assert "| statistic | real | simulated (seeds 0) | relative difference | within 20% |" in printed
    assert "| correlation of centred counts, lag 168 h | 0.79 |" in printed
    assert printed.split("| statistic")[1].split("\n\n")[0] in path.with_suffix(".md").read_text()
