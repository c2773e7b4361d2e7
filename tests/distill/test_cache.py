"""The teacher cache: one teacher pass per split, lookups equal to running the teacher."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from stgkd.distill.cache import ADJACENCY_KEY, TeacherCache
from stgkd.errors import ConfigError, DataError

S, T, N, C, H, D = 11, 3, 4, 2, 2, 5


class CountingTeacher(nn.Module):
    """Tiny teacher; records every window id (stored in channel 1 of x) it is run on."""

    feature_names = ("seq", "skip")
    distill_feature = "skip"
    adaptive = True

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Linear(T, H)
        self.embed = nn.Linear(C, D)
        self.nodes = nn.Parameter(torch.randn(N, N))
        self.seen: list[int] = []

    def forward(self, x, return_features=False):
        self.seen.extend(x[:, 0, 0, 1].round().long().tolist())
        out = self.head(x[..., 0].transpose(1, 2)).transpose(1, 2)  # (B, H, N)
        seq = torch.tanh(self.embed(x))  # (B, T, N, D)
        feats = {"seq": seq, "skip": seq.sum(1)}
        return (out, feats) if return_features else out

    def adaptive_adjacency(self):
        return torch.softmax(torch.relu(self.nodes), dim=-1)

    def adaptive_support(self):
        return self.adaptive_adjacency().t()


class FakeSplit:
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(1)
        self.inputs = torch.randn(S, T, N, C, generator=g)
        self.inputs[..., 1] = torch.arange(S, dtype=torch.float32).view(S, 1, 1)  # window id

    def __len__(self) -> int:
        return S

    def batch(self, idx):
        return SimpleNamespace(x=self.inputs[idx], index=idx)


@pytest.fixture
def split():
    return FakeSplit()


def reference(teacher, split, idx):
    with torch.no_grad():
        out, feats = teacher(split.inputs[idx], return_features=True)
    return out, {"seq": feats["seq"].mean(1), "skip": feats["skip"]}


def test_lookup_equals_running_the_teacher(split):
    teacher = CountingTeacher()
    cache = TeacherCache.build(teacher, split, ["skip", "seq"], "cpu", dtype=torch.float32, batch_size=4)
    assert not cache.on_disk and len(cache) == S
    assert cache.nbytes == S * (H * N + 2 * N * D) * 4
    idx = torch.tensor([7, 0, 10, 3])
    out, feats = cache.lookup(idx)
    ref_out, ref_feats = reference(teacher, split, idx)
    assert out.shape == (4, H, N) and feats["seq"].shape == (4, N, D)
    assert torch.allclose(out, ref_out, atol=1e-6)
    for name in ("seq", "skip"):
        assert torch.allclose(feats[name], ref_feats[name], atol=1e-6)
    assert torch.allclose(feats[ADJACENCY_KEY], teacher.adaptive_support())  # the operator as applied


def test_teacher_runs_once_per_window_and_never_at_lookup(split):
    teacher = CountingTeacher()
    teacher.train()
    cache = TeacherCache.build(teacher, split, ["skip"], "cpu", batch_size=3)
    assert sorted(teacher.seen) == list(range(S))  # each window exactly once
    assert teacher.training  # mode restored
    for _ in range(3):  # "epochs"
        cache.lookup(torch.randperm(S)[:5])
    assert len(teacher.seen) == S


def test_float16_storage_is_close(split):
    teacher = CountingTeacher()
    cache = TeacherCache.build(teacher, split, ["skip"], "cpu")
    idx = torch.arange(S)
    out, feats = cache.lookup(idx)
    ref_out, ref_feats = reference(teacher, split, idx)
    assert out.dtype == torch.float32
    assert torch.allclose(out, ref_out, atol=2e-3, rtol=1e-3) and not torch.equal(out, ref_out)
    assert torch.allclose(feats["skip"], ref_feats["skip"], atol=5e-3)


def test_disk_mode_equals_memory_mode_and_reopens(split, tmp_path):
    teacher = CountingTeacher()
    memory = TeacherCache.build(teacher, split, ["seq", "skip"], "cpu", batch_size=5)
    disk = TeacherCache.build(teacher, split, ["seq", "skip"], "cpu", batch_size=5, max_bytes=0, cache_dir=tmp_path)
    assert disk.on_disk and not memory.on_disk
    reopened = TeacherCache.open(tmp_path)
    idx = torch.tensor([2, 9, 4])
    m_out, m_feats = memory.lookup(idx)
    for cache in (disk, reopened):
        out, feats = cache.lookup(idx)
        assert torch.equal(out, m_out)
        assert feats.keys() == m_feats.keys()
        for name in m_feats:
            assert torch.equal(feats[name], m_feats[name])
    with pytest.raises(DataError, match="outside"):
        disk.lookup(torch.tensor([S]))


def test_temporary_disk_cache(split):
    cache = TeacherCache.build(CountingTeacher(), split, [], "cpu", max_bytes=0)
    assert cache.on_disk and cache.directory.is_dir()
    out, feats = cache.lookup(torch.tensor([1]))
    assert out.shape == (1, H, N) and set(feats) == {ADJACENCY_KEY}


def test_shuffled_loader_source_places_by_index(split):
    teacher = CountingTeacher()
    order = torch.randperm(S, generator=torch.Generator().manual_seed(3))
    loader = [split.batch(order[i : i + 4]) for i in range(0, S, 4)]
    from_loader = TeacherCache.build(teacher, loader, ["skip"], "cpu", dtype=torch.float32, num_samples=S)
    from_split = TeacherCache.build(teacher, split, ["skip"], "cpu", dtype=torch.float32)
    idx = torch.arange(S)
    # same values at the same places; batches of other composition may round the last bit differently
    torch.testing.assert_close(from_loader.lookup(idx)[0], from_split.lookup(idx)[0], rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="num_samples"):
        TeacherCache.build(teacher, loader, ["skip"], "cpu")


def test_incomplete_or_repeated_sources_are_refused(split, tmp_path):
    teacher = CountingTeacher()
    with pytest.raises(DataError, match="visited 4 of 11"):
        TeacherCache.build(teacher, [split.batch(torch.arange(4))], [], "cpu", num_samples=S)
    twice = [split.batch(torch.arange(6)), split.batch(torch.arange(5, 11))]
    with pytest.raises(DataError, match="seen twice"):
        TeacherCache.build(teacher, twice, [], "cpu", num_samples=S)
    with pytest.raises(ConfigError, match="lack \\['nope'\\]"):
        TeacherCache.build(teacher, split, ["nope"], "cpu")
    with pytest.raises(DataError, match="not found"):
        TeacherCache.open(tmp_path / "missing")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cache_on_the_gpu_equals_cpu(split):
    teacher = CountingTeacher()
    cpu = TeacherCache.build(teacher, split, ["skip"], "cpu", dtype=torch.float32)
    gpu = TeacherCache.build(teacher.cuda(), split, ["skip"], "cuda", dtype=torch.float32)
    assert not gpu.on_disk and gpu.forecast.is_cuda
    idx = torch.tensor([5, 1, 8])
    for index in (idx, idx.cuda()):
        out, feats = gpu.lookup(index)
        assert out.is_cuda and feats["skip"].is_cuda
        assert torch.allclose(out.cpu(), cpu.lookup(idx)[0], atol=1e-5)
        assert torch.allclose(feats["skip"].cpu(), cpu.lookup(idx)[1]["skip"], atol=1e-5)
