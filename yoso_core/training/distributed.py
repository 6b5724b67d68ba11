"""Multi-process training under ``torchrun``: process group, ranks, data sharding, gathering.

``torchrun --nproc_per_node N yoso finetune ...`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``;
the same command then trains with DistributedDataParallel (gloo on CPU, nccl on GPU). Every
process draws the same global batch order and takes its own slice of each global batch; only
rank 0 logs, evaluates and writes files. Without those variables everything runs in one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..devices import pick_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: its rank, the number of processes and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on the process that logs, evaluates and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun; return this process's DistInfo."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    target = pick_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if target.type == "cuda":
            torch.cuda.set_device(target)
        dist.init_process_group(backend="nccl" if target.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=target)


def teardown(info: DistInfo) -> None:
    """Leave the process group (after a final barrier)."""
    if info.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op in one process)."""
    if info.distributed:
        dist.barrier()


def sum_across(info: DistInfo, value: float) -> float:
    """The sum of ``value`` over all processes."""
    if not info.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return t.item()


def mean_across(info: DistInfo, value: float) -> float:
    """The mean of ``value`` over all processes."""
    return sum_across(info, value) / info.world_size


def gather_objects(info: DistInfo, obj: Any) -> list[Any]:
    """``obj`` of every process, indexed by rank (a one-element list in one process)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def wrap_model(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when several processes train, else ``model``."""
    if not info.distributed:
        return model
    ids = [info.device.index] if info.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
