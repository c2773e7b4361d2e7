"""The shape of the code: modules small enough to read in ``stgkd/``, ``tuning/`` and ``benchmarks/``, and
the public names that moved when a module became a package still importable from where they were."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import stgkd

REPO = Path(stgkd.__file__).parent.parent
#: the packages whose modules the limit holds for: the library, the search and the benchmark scripts
PACKAGES = ("stgkd", "tuning", "benchmarks")
#: the most lines a module may hold (a longer one is two concepts sharing a file)
MAX_LINES = 600


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_longer_than_the_limit(package):
    root = REPO / package
    assert (root / "__init__.py").is_file(), f"{package}/ is not a package at {root}"
    lengths = {str(p.relative_to(REPO)): len(p.read_text().splitlines()) for p in root.rglob("*.py")}
    assert {path: n for path, n in lengths.items() if n > MAX_LINES} == {}


@pytest.mark.parametrize("module, names", [
    ("stgkd.export", ["FORMATS", "QUANTIZE", "RawUnitsForecaster", "OnnxProgram", "export_student", "quantize_int8",
                      "backend_of", "read_checkpoint", "build_forecaster_module", "file_kind", "load_exported",
                      "metadata_from_payload", "deployment_checks", "example_inputs", "CHECK_BATCHES",
                      "EXPORT_FORMAT", "FEATURE_CODES", "INT8_LAYERS", "METADATA_FILE"]),
    ("stgkd.nn.peers", ["DCRNN", "STGCN", "AGCRN", "MTGNN", "PGTRecurrent", "PGTTGCN", "PGTA3TGCN", "PGTGConvGRU",
                        "diffusion_norms", "ForecastModel", "dense_to_sparse"]),
])
def test_names_of_a_module_turned_package_import_from_where_they_were(module, names):
    package = importlib.import_module(module)
    assert Path(package.__file__).name == "__init__.py"
    assert [n for n in names if not hasattr(package, n)] == []
    assert set(package.__all__) <= set(names)
