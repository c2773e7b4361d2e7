"""The CUDA-graph capture probe: settings asked of child processes, a child that dies costs only the
setting it was capturing, verdicts another part found are not asked again."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from benchmarks import capture
from benchmarks.capture import CaptureJob, model_config, probe, probe_missing, setting_key


def _jobs(n: int = 5) -> list[CaptureJob]:
    adj = np.eye(n, dtype=np.float32)
    return [CaptureJob(setting_key(cfg, 1, "fp32"), cfg, adj, 1, "fp32")
            for cfg in (model_config("gru", n, hidden=4), model_config("gcn-gru", n, hidden=4))]


def test_setting_key_names_the_model_its_hyperparameters_batch_and_precision():
    assert setting_key(model_config("gcn-gru", 207, hidden=32), 1, "bf16") == "gcn-gru hidden=32 b1 bf16"
    assert setting_key(model_config("graph-wavenet", 883), 64, "fp32") == "graph-wavenet b64 fp32"
    # the graph's size is not part of it: a capture does not depend on it
    assert setting_key(model_config("gru", 5, hidden=4), 1, "fp32") == setting_key(model_config("gru", 9, hidden=4), 1,
                                                                                    "fp32")


def test_a_child_process_builds_each_model_and_tries_its_capture():
    """On a machine without CUDA the child's answer for every setting is the reason it cannot capture."""
    logs: list[str] = []
    verdicts = probe(_jobs(), device="cpu", log=logs.append)
    assert list(verdicts) == [job.key for job in _jobs()]
    assert all(v.startswith("ConfigError: mode='cuda-graph' needs device='cuda'") for v in verdicts.values())
    assert len(logs) == 1  # one child answered both: no failed capture, no restart


def test_a_child_that_dies_costs_only_the_setting_it_was_capturing(monkeypatch):
    """The first child announces the first setting and dies (as a capture that crashes the process would);
    that setting gets the death as its verdict and a fresh child answers the rest."""
    real = capture._child_command
    launches = []

    def command(jobs_path, out_path, device):
        launches.append(jobs_path.read_text())
        if len(launches) == 1:
            script = ("import json, os, sys; jobs = json.load(open(sys.argv[1])); "
                      "open(sys.argv[2], 'a').write(json.dumps({'key': jobs[0]['key']}) + '\\n'); "
                      "sys.stderr.write('CUDA error: an illegal memory access was encountered\\n'); "
                      "sys.stderr.flush(); os.abort()")
            return [sys.executable, "-c", script, str(jobs_path), str(out_path)]
        return real(jobs_path, out_path, device)

    monkeypatch.setattr(capture, "_child_command", command)
    jobs = _jobs()
    verdicts = probe(jobs, device="cpu", log=lambda msg: None)
    assert [[j["key"] for j in json.loads(text)] for text in launches] == [[jobs[0].key, jobs[1].key],
                                                                           [jobs[1].key]]  # the rest, only
    first = verdicts[jobs[0].key]
    assert first.startswith("the probe process exited with -6 while capturing it")
    assert "CUDA error: an illegal memory access" in first
    assert verdicts[jobs[1].key].startswith("ConfigError: ")


def test_verdicts_already_known_are_not_probed_again(monkeypatch):
    asked = []
    monkeypatch.setattr(capture, "probe", lambda jobs, **kw: asked.append([j.key for j in jobs]) or
                        {j.key: "RuntimeError: boom" for j in jobs})
    jobs = _jobs()
    known = {jobs[0].key: None, "another setting": "not capturable here"}
    got = probe_missing(jobs, known, device="cuda")
    assert asked == [[jobs[1].key]]
    assert got == {jobs[0].key: None, jobs[1].key: "RuntimeError: boom"}
    asked.clear()
    assert probe_missing(jobs, got, device="cuda") == got and asked == []


def test_nothing_is_probed_past_the_deadline():
    from benchmarks.budget import Deadline

    verdicts = probe(_jobs(), device="cpu", deadline=Deadline(0.0, clock=lambda: 1.0))
    assert set(verdicts.values()) == {"not probed: the time budget was spent"}


def test_the_child_reads_graphs_only_as_plain_arrays(tmp_path):
    """A graph file is loaded with ``allow_pickle=False``: a pickled object is refused, not run."""
    import pickle

    (tmp_path / "g.npy").write_bytes(pickle.dumps({"not": "an array"}))
    jobs = [{"key": "k", "config": model_config("gru", 3, hidden=2), "graph": "g.npy", "batch": 1, "dtype": "fp32"}]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    with pytest.raises(ValueError):
        capture._run_jobs(tmp_path / "jobs.json", tmp_path / "out.jsonl", "cpu")
