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


def _own_network(folder, distances: list[float]):
    """values.csv (8 sensors, 5-minute steps) + edges.csv: a ring with the given road lengths."""
    import pandas as pd

    folder.mkdir(parents=True)
    ids = [f"s{i}" for i in range(8)]
    frame = pd.DataFrame(np.random.default_rng(0).uniform(40, 70, (600, 8)).round(2), columns=ids)
    frame.insert(0, "timestamp", pd.date_range("2024-01-01", periods=600, freq="5min"))
    frame.to_csv(folder / "values.csv", index=False)
    rows = [f"{ids[i]},{ids[(i + 1) % 8]},{d}" for i, d in enumerate(distances)]
    (folder / "edges.csv").write_text("source,target,distance\n" + "\n".join(rows) + "\n")
    return folder


def test_info_warns_when_the_kernel_drops_every_edge_and_the_options_keep_them(tmp_path, capsys):
    folder = _own_network(tmp_path / "ring", [1.0 + 0.01 * i for i in range(8)])
    assert main(["data", "info", str(folder)]) == 0
    captured = capsys.readouterr()
    assert _lines(captured.out)["edges"] == "0"
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: {folder / 'edges.csv'}: the Gaussian kernel")
    assert "8 of the 8 listed edges (100%)" in err[0] and "--sigma" in err[0]
    assert main(["data", "info", str(folder), "--sigma", "1"]) == 0
    captured = capsys.readouterr()
    assert _lines(captured.out)["edges"] == "8" and captured.err == ""
    assert main(["data", "info", str(folder), "--threshold", "0", "--sigma", "100"]) == 0
    assert _lines(capsys.readouterr().out)["edges"] == "8"


def test_info_on_equal_distances_weighs_edges_one_with_a_warning(tmp_path, capsys):
    folder = _own_network(tmp_path / "grid", [2.0] * 8)
    assert main(["data", "info", str(folder)]) == 0
    captured = capsys.readouterr()
    info = _lines(captured.out)
    assert info["edges"] == "8" and info["weight"] == "min=1 mean=1 max=1"
    assert captured.err.startswith(f"warning: {folder / 'edges.csv'}: every listed distance is 2")


def test_info_on_a_repeated_sensor_id_names_it_and_the_file(tmp_path, capsys):
    folder = _own_network(tmp_path / "dup", [1.0 + i for i in range(8)])
    text = (folder / "values.csv").read_text().splitlines()
    (folder / "values.csv").write_text("\n".join([text[0].replace("s7", "s3")] + text[1:]) + "\n")
    assert main(["data", "info", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"stgkd data: error: {folder / 'values.csv'}: sensor id 's3' is repeated (columns 5 and 9); "
                   "each sensor needs exactly one column of readings: rename or remove the repeats")
