"""Data-parallel training under ``torchrun``: process group, rank, and the collectives
the trainer needs.

With ``WORLD_SIZE > 1`` in the environment (``torchrun --nproc-per-node N``), the process
group is initialised from the environment (NCCL on CUDA, gloo on CPU). The dataset deals
its file units to ranks itself (:class:`heptagon.data.JetDataset`), gradients are averaged
by ``DistributedDataParallel``, and only rank 0 writes files.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["Distributed", "init_distributed"]


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job (``world == 1``: no process group)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and shows progress."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether a process group is in use."""
        return self.world > 1

    def all_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds on every rank (e.g. each still has a batch)."""
        if not self.active:
            return flag
        t = torch.tensor([int(flag)])
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over ranks (float64)."""
        if not self.active:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return [float(v) for v in t.tolist()]

    def gather(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Concatenate each array over ranks (in rank order), on every rank."""
        if not self.active:
            return arrays
        parts: list[Any] = [None] * self.world
        dist.all_gather_object(parts, arrays)
        return {k: np.concatenate([p[k] for p in parts]) for k in arrays}

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.active:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group if :func:`init_distributed` created it.

        Unreachable ``DistributedDataParallel`` wrappers are collected first: their reducer
        holds the group, and one freed after it (at interpreter exit) can abort the process
        from a gloo thread.
        """
        if self.owns_group and dist.is_initialized():
            gc.collect()
            dist.destroy_process_group()


def init_distributed(use_cuda: bool) -> Distributed:
    """Join the process group described by torchrun's environment, if any.

    Returns the rank information; a job already initialised (by the caller) is used as is.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank, owns)
