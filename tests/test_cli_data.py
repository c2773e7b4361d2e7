"""``stgkd data info|synth|fetch|list`` called in-process through ``stgkd.cli.main``."""

from __future__ import annotations

import numpy as np
import pytest

from stgkd.cli import main
from stgkd.data import load_dataset
from stgkd.data.readers import read_generic


def _lines(text: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}


def test_synth_then_info_roundtrip(tmp_path, capsys):
    from stgkd.data.synthetic import generate

    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--nodes", "8", "--days", "2", "--seed", "5"]) == 0
    assert "wrote 576 steps x 8 sensors" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["adj_mx.pkl", "edges.csv", "synthetic.h5"]

    expected, road = generate(num_nodes=8, num_days=2, seed=5)
    loaded = load_dataset(out)  # DCRNN layout: synthetic.h5 + adj_mx.pkl
    np.testing.assert_array_equal(loaded.values, expected.values)
    np.testing.assert_array_equal(loaded.adj, expected.adj)
    assert loaded.sensor_ids == expected.sensor_ids
    assert loaded.timestamps.equals(expected.timestamps)
    # the road graph's edge list names the same sensors and one row per road segment
    via_edges = read_generic(out / "synthetic.h5", out / "edges.csv", sigma=1e6, threshold=0.0)
    assert int(np.count_nonzero(via_edges.adj)) == road.number_of_edges()

    assert main(["data", "info", str(out)]) == 0
    info = _lines(capsys.readouterr().out)
    assert info["steps"] == "576" and info["nodes"] == "8" and info["interval"] == "5 min"
    assert info["channels"].startswith("1")
    assert info["time range"] == f"{expected.timestamps[0]} .. {expected.timestamps[-1]}"
    assert info["missing"].startswith(f"{100 * expected.missing_fraction:.2f}%")
    assert info["non-zeros (incl. diagonal)"] == str(int(np.count_nonzero(expected.adj)))
    assert info["nodes"] == "8" and "weakly connected components" in info and "strongly connected components" in info


def test_synth_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / "adj_mx.pkl").write_bytes(b"mine")
    assert main(["data", "synth", "--out", str(out), "--nodes", "8", "--days", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds adj_mx.pkl; pass --force" in err[0]
    assert (out / "adj_mx.pkl").read_bytes() == b"mine"


def test_info_errors_are_one_line_exit_2(isolated_data_root, tmp_path, capsys):
    assert main(["data", "info", "metr-la"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("stgkd data: error: metr-la: missing metr-la.h5, adj_mx.pkl in ")
    assert "stgkd data fetch metr-la" in err[0]
    assert main(["data", "info", str(tmp_path / "nowhere")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["data", "fetch", "no-such-dataset"]) == 2
    assert "unknown dataset 'no-such-dataset'" in capsys.readouterr().err


def test_list(isolated_data_root, capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "metr-la    34272x207x1" in out and "missing metr-la.h5, adj_mx.pkl" in out
    assert "synthetic" in out


@pytest.mark.realdata
def test_info_on_real_week(real_data_dir, capsys):
    assert main(["data", "info", str(real_data_dir)]) == 0
    info = _lines(capsys.readouterr().out)
    assert info["steps"] == "2016" and info["nodes"] == "207"
    assert info["time range"] == "2012-03-01 00:00:00 .. 2012-03-07 23:55:00"
    assert info["missing"].startswith("0.00%")
    assert info["non-zeros (incl. diagonal)"] == "1722"
    assert info["edges"] == "1515" and info["self loops"] == "207"
    assert main(["data", "info", str(real_data_dir / "los_speed.csv"), "--start", "2012-03-01"]) == 0
    assert _lines(capsys.readouterr().out)["time range"] == "2012-03-01 00:00:00 .. 2012-03-07 23:55:00"


def test_info_on_counts_warns_in_one_line_and_names_the_closed_stop(tmp_path, capsys):
    import warnings

    from test_missing import CLOSED, write_counts

    folder = write_counts(tmp_path / "bus")
    before = warnings.showwarning
    assert main(["data", "info", str(folder)]) == 0
    assert warnings.showwarning is before  # the command line's format is not left behind
    captured = capsys.readouterr()
    info = _lines(captured.out)
    assert info["missing"].endswith("of channel-0 readings (missing='zero': 0 and NaN are missing)")
    assert info["sensors without any reading"] == f"1 ({CLOSED})"
    err = captured.err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith(f"warning: {folder / 'values.csv'}: ") for line in err)
    assert "% of channel-0 readings are missing" in err[0] and "--missing nan" in err[0]
    assert f"no channel-0 reading at all (missing='zero': 0 and NaN are missing): {CLOSED}" in err[1]
    assert "DataWarning" not in captured.err and "warnings.warn" not in captured.err

    assert main(["data", "info", str(folder), "--missing", "nan"]) == 0
    captured = capsys.readouterr()
    info = _lines(captured.out)
    assert info["missing"].startswith("0.00%") and "missing='nan'" in info["missing"]
    assert info["sensors without any reading"] == "0" and captured.err == ""

    assert main(["data", "info", str(folder), "--missing", "zeros"]) == 2
    assert "argument --missing: 'zeros' is not a missing-value convention" in capsys.readouterr().err
