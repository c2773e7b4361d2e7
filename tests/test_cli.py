"""``stgkd`` itself (the command table's own flags), called in-process through ``stgkd.cli.main``."""

from __future__ import annotations

import importlib.metadata

import stgkd.version
from stgkd.cli import main


def test_version_is_the_installed_distributions(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"stgkd {importlib.metadata.version('stgkd')}\n"


def test_version_of_a_checkout_that_was_never_installed(monkeypatch, capsys):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    monkeypatch.setattr(stgkd.version, "__version__", "0.0.0+checkout")
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == "stgkd 0.0.0+checkout\n"
