"""Several processes, one model: DistributedDataParallel plus a window-index sampler.

``torchrun --nproc_per_node=K -m stgkd train ...`` starts K processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set; :func:`init_distributed`
reads them and joins the process group (NCCL on CUDA, gloo on CPU). Each epoch every rank draws
the same permutation of the training windows (seeded by ``seed + epoch``) and takes every K-th
index of it, as :class:`torch.utils.data.DistributedSampler` does, so K ranks with batch ``b``
see, step by step, exactly the windows one process with batch ``K * b`` would. Metrics are summed
over ranks with :func:`all_reduce_sum`; only rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from stgkd.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size``, on ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str | None) -> torch.device:
    """``None``/``"auto"`` → CUDA when present, else CPU; ``"cuda"`` without a GPU is an error."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine")
    return dev


def init_distributed(device: str | None = None) -> DistContext:
    """Join the process group torchrun describes in the environment, or run alone.

    With ``WORLD_SIZE`` unset or 1 this returns a single-process context on ``device``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if world <= 1:
        return DistContext(device=dev)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=dev, backend=backend)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (no-op for a single process)."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def epoch_indices(num: int, *, epoch: int, seed: int, shuffle: bool, ctx: DistContext) -> Tensor:
    """This rank's window indices for one epoch.

    All ranks draw the same permutation (``torch.Generator`` seeded with ``seed + epoch``, so a
    resumed run draws what the uninterrupted one did), pad it by wrapping around to a multiple of
    ``world_size`` and keep positions ``rank, rank + K, ...``.
    """
    if shuffle:
        gen = torch.Generator().manual_seed(int(seed) + int(epoch))
        order = torch.randperm(num, generator=gen)
    else:
        order = torch.arange(num)
    if ctx.world_size > 1:
        total = -(-num // ctx.world_size) * ctx.world_size
        if total > num:
            order = torch.cat([order, order[: total - num]])
        order = order[ctx.rank :: ctx.world_size]
    return order


def shard_eval_indices(num: int, ctx: DistContext) -> Tensor:
    """Evaluation indices of this rank: a strided shard without padding, so sums over ranks count
    every window exactly once."""
    return torch.arange(ctx.rank, num, ctx.world_size)


def all_reduce_sum(tensor: Tensor, ctx: DistContext) -> Tensor:
    """Sum ``tensor`` over ranks in place (float64 sums are kept as they are) and return it."""
    if ctx.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def wrap_ddp(module: nn.Module, ctx: DistContext, *, find_unused_parameters: bool = False) -> nn.Module:
    """Wrap ``module`` in :class:`~torch.nn.parallel.DistributedDataParallel` when distributed."""
    if not ctx.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    if ctx.device.type == "cuda":
        return DistributedDataParallel(
            module, device_ids=[ctx.device.index], output_device=ctx.device.index,
            find_unused_parameters=find_unused_parameters,
        )
    return DistributedDataParallel(module, find_unused_parameters=find_unused_parameters)
