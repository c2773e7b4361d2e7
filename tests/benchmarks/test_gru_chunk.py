"""benchmarks.gru_chunk: the record it writes."""

from __future__ import annotations

import json

from benchmarks.gru_chunk import main


def test_it_times_whole_and_chunked_calls_and_writes_the_record(tmp_path):
    assert main(["--sequences", "10", "--chunks", "0", "4", "--hidden", "4", "--steps", "3", "--repeats", "1",
                 "--out", str(tmp_path), "--allow-busy"]) == 0
    (path,) = tmp_path.glob("gru-chunk-cpu-*.json")
    report = json.loads(path.read_text())
    assert [(r["sequences"], r["chunk"]) for r in report["rows"]] == [(10, None), (10, 4)]
    assert all(r["seconds"] > 0 and r["us_per_sequence"] == r["seconds"] / 10 * 1e6 for r in report["rows"])
    assert "| 10 | one call |" in path.with_suffix(".md").read_text()
