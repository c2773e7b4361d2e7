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
    assert outcome == {"gain_line": "distillation gained +0.2", "verdicts": verdicts, "others_busy_cores": 0.02}
    report = {"date": "d", "command": "c", "machine": "m", "commit": "x", "pip_config": "", "demo": {
        "command": "stgkd demo", "rc": 0, "wall_seconds": 1.0, "load_average_before": [0.1], "load_average_after": [0.2],
        **outcome}}
    text = render(report)
    assert "distillation gained +0.2" in text and "**not every one holds**" in text
