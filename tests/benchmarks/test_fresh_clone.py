"""README's first command, as benchmarks.fresh_clone reads and splits it."""

from __future__ import annotations

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
