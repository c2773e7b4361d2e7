"""The compiled-program cache: where it lives, when it is refused, what its keys depend on."""

from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest
import torch

from stgkd.export import program_cache as cache


def test_the_cache_is_a_private_directory_named_by_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("STGKD_CACHE_DIR", str(tmp_path / "root"))
    programs = cache.cache_dir()
    assert programs == tmp_path / "root" / "programs"
    assert stat.S_IMODE(programs.stat().st_mode) & 0o077 == 0  # created 0700
    monkeypatch.delenv("STGKD_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "stgkd" / "programs"


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="file ownership and modes are POSIX")
def test_a_directory_others_can_write_is_never_used(tmp_path, monkeypatch):
    root = tmp_path / "shared"
    (root / "programs").mkdir(parents=True)
    monkeypatch.setenv("STGKD_CACHE_DIR", str(root))
    os.chmod(root / "programs", 0o700)
    assert cache.cache_dir() == root / "programs"
    for writable in (root, root / "programs"):
        os.chmod(writable, 0o777)
        assert cache.cache_dir() is None, writable
        os.chmod(writable, 0o700)
    package = tmp_path / "p.pt2"
    package.write_bytes(b"library")
    os.chmod(root, 0o770)  # group-writable: nothing is kept there
    assert cache.store(package, "k") is None and not (root / "programs" / "k.pt2").exists()
    os.chmod(root, 0o700)
    kept = cache.store(package, "k")
    assert kept == root / "programs" / "k.pt2" and kept.read_bytes() == b"library"
    assert [p.name for p in (root / "programs").iterdir()] == ["k.pt2"]  # no temporary file left behind


def test_a_key_names_the_file_the_torch_the_threads_and_the_cpu(monkeypatch):
    key = cache.program_key("a" * 64, 1)
    assert key == cache.program_key("a" * 64, 1)
    assert key != cache.program_key("b" * 64, 1)
    assert key != cache.program_key("a" * 64, 2)
    monkeypatch.setattr(torch, "__version__", "0.0.1")
    assert key != cache.program_key("a" * 64, 1)
    monkeypatch.undo()
    monkeypatch.setattr(cache, "cpu_signature", lambda: {"machine": "other"})
    assert key != cache.program_key("a" * 64, 1)


def test_a_key_for_a_gpu_names_the_gpu(monkeypatch):
    gpus = {0: {"gpu": "NVIDIA H100", "capability": "9.0", "cuda": "12.8"},
            1: {"gpu": "NVIDIA A100", "capability": "8.0", "cuda": "12.8"}}
    monkeypatch.setattr(cache, "cuda_signature", lambda device: gpus[device.index])
    cpu = cache.program_key("a" * 64, 1)
    h100, a100 = (cache.program_key("a" * 64, 1, torch.device("cuda", i)) for i in (0, 1))
    assert len({cpu, h100, a100}) == 3  # a program compiled for one GPU is never loaded for another
    assert h100 == cache.program_key("a" * 64, 1, torch.device("cuda", 0))
    assert cpu == cache.program_key("a" * 64, 1, torch.device("cpu"))
    # the CPU's key is the one it always was: programs compiled before a GPU could be named are found again
    parts = {"layout": cache._LAYOUT, "file": "a" * 64, "torch": torch.__version__, "threads": 1,
             "cpu": cache.cpu_signature()}
    assert cpu == hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def test_file_digest_is_sha256_of_the_bytes(tmp_path):
    import hashlib

    path = tmp_path / "f.bin"
    data = os.urandom(3 << 20)  # read in blocks: longer than one
    path.write_bytes(data)
    assert cache.file_digest(path) == hashlib.sha256(data).hexdigest()


def test_plausible_inputs_follow_the_metadata():
    meta = {"scaler": {"mean": 50.0, "std": 10.0}, "input_steps": 7, "sensor_ids": ["a", "b", "c"],
            "interval_minutes": 15}
    values, stamps = cache.plausible_inputs(meta, 4, seed=1)
    assert values.shape == (4, 7, 3) and values.dtype == torch.float32
    assert stamps.shape == (4, 7) and stamps.dtype == torch.int64
    assert bool((stamps.diff(dim=1) == 15 * 60).all())
    observed = values[~values.isnan()]
    assert bool((observed > 0).all()) and 30 < float(observed.mean()) < 70


def test_a_package_that_does_not_load_says_which(tmp_path):
    from stgkd.errors import CheckpointError

    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"not a package")
    with pytest.raises(CheckpointError, match=r"bad\.pt2: the compiled program does not load"):
        cache.CachedProgram(bad)


def test_a_cache_that_cannot_be_written_keeps_nothing_and_raises_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("STGKD_CACHE_DIR", str(tmp_path / "root"))
    package = tmp_path / "p.pt2"
    package.write_bytes(b"library")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.os, "replace", full)
    assert cache.store(package, "k") is None
    assert list((tmp_path / "root" / "programs").iterdir()) == []
