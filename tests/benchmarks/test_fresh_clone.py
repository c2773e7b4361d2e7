"""README's first command, as benchmarks.fresh_clone reads and splits it."""

from __future__ import annotations

import json

import pytest

from benchmarks.fresh_clone import REPO, readme_command, split_command


def test_the_readme_command_splits_into_the_install_and_the_demo():
    command = readme_command(REPO / "README.md")
    install, demo = split_command(command)
    assert install.startswith("python3 -m venv .venv && ") and "pip install" in install
    assert demo == ".venv/bin/stgkd demo" and command == f"{install} && {demo}"


def test_a_readme_without_the_demo_command_is_named(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Two commands\n\n```bash\npython -m pytest\n```\n")
    with pytest.raises(SystemExit, match=r"README\.md: no bash block under 'Two commands' ends in"):
        readme_command(readme)
    with pytest.raises(SystemExit, match="does not end in"):
        split_command("pip install x && stgkd train")


def test_the_demo_outcome_is_read_from_its_summary(tmp_path):
    from benchmarks.fresh_clone import demo_outcome, render

    assert demo_outcome(tmp_path / "summary.json") == {}  # the demo wrote none: nothing claimed
    verdicts = {"teacher_better_than_plain": True, "distilled_better_than_plain": True, "speedup_at_least_5x": False}
    (tmp_path / "summary.json").write_text(json.dumps({"gain": {"line": "distillation gained +0.2", "verdicts": verdicts},
                                                       "latency": {"others_busy_cores": 0.02}}))
    outcome = demo_outcome(tmp_path / "summary.json")
    assert outcome == {"gain_line": "distillation gained +0.2", "verdicts": verdicts, "others_busy_cores": 0.02,
                       "speedup_b1": None, "latency_b1_ms": None, "speedup_b1_eager": None}
    report = {"date": "d", "command": "c", "machine": "m", "commit": "x", "pip_config": "", "demo": {
        "command": "stgkd demo", "rc": 0, "wall_seconds": 1.0, "load_average_before": [0.1], "load_average_after": [0.2],
        **outcome}}
    text = render(report)
    assert "distillation gained +0.2" in text and "**not every one holds**" in text


def test_the_test_steps_are_read_after_the_install():
    from benchmarks.fresh_clone import readme_test_steps

    install, _ = split_command(readme_command(REPO / "README.md"))
    steps = readme_test_steps(REPO / "README.md", install)
    assert steps[0] == ".venv/bin/python -m pytest" and any("-m compile" in s for s in steps[1:])


def test_each_seed_and_test_step_is_a_row_and_a_verdict(tmp_path):
    from benchmarks.fresh_clone import cold_cache, render

    env = cold_cache({"PATH": "/bin"}, tmp_path / "c")
    assert env["TORCHINDUCTOR_CACHE_DIR"] == env["STGKD_CACHE_DIR"] == str(tmp_path / "c") and (tmp_path / "c").is_dir()
    with pytest.raises(FileExistsError):  # a cache is never shared between steps
        cold_cache({}, tmp_path / "c")
    part = {"rc": 0, "wall_seconds": 400.0, "load_average_before": [0.1], "load_average_after": [0.2]}
    report = {"date": "d", "command": "c", "machine": "m", "commit": "x", "pip_config": "",
              "install": {**part, "command": "pip"}, "demo": {**part, "command": "stgkd demo", "seed": 0},
              "demo-seed1": {**part, "command": "stgkd demo --seed 1", "seed": 1, "gain_line": "gained +0.3",
                             "verdicts": {"a": True}},
              "tests": [{**part, "command": "pytest", "wall_seconds": 370.0}, {**part, "command": "pytest -m compile"}],
              "tests_within_promise": False, "total_minutes": 9.1, "within_promise": False}
    text = render(report)
    assert "| demo-seed1 | `stgkd demo --seed 1` | 0 | 400 |" in text and "| tests 2 | `pytest -m compile` |" in text
    assert "demo-seed1 (seed 1): gained +0.3." in text and "**6.2 min** (promise: ≤ 6 min): **no**" in text


def test_a_failed_step_keeps_its_failures_and_last_lines_in_the_record(tmp_path):
    """A step's log lives in a temporary folder removed after the run: what failed must be in the record."""
    from benchmarks.fresh_clone import render, timed

    ok = timed("echo fine", tmp_path, {"PATH": "/bin:/usr/bin"}, tmp_path / "ok.log")
    assert ok["rc"] == 0 and "failed" not in ok and "output_tail" not in ok
    bad = timed("echo collecting; echo 'FAILED tests/test_x.py::test_y - assert 1 == 2'; echo '1 failed'; exit 1",
                tmp_path, {"PATH": "/bin:/usr/bin"}, tmp_path / "bad.log")
    assert bad["rc"] == 1 and bad["failed"] == ["FAILED tests/test_x.py::test_y - assert 1 == 2"]
    assert bad["output_tail"][-1] == "1 failed"
    part = {"rc": 0, "wall_seconds": 1.0, "load_average_before": [0.1], "load_average_after": [0.2]}
    text = render({"date": "d", "command": "c", "machine": "m", "commit": "x", "pip_config": "",
                   "install": {**part, "command": "pip"}, "tests": [bad]})
    assert "**tests 1 failed** (exit 1): `FAILED tests/test_x.py::test_y - assert 1 == 2`" in text
