"""Distributed data parallel under ``torchrun`` (one process per GPU, any number of nodes).

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address; the
process group is initialised here with NCCL on GPUs and gloo on CPUs (how the tests run it:
two CPU processes). Rank 0 alone records the run and writes files; every rank takes the same
decisions from all-reduced metrics, so none waits on another that stopped early.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from zoo.errors import FinetuneConfigError

__all__ = ["Dist", "setup", "wrap"]


@dataclass(frozen=True)
class Dist:
    """This process's place in the job; ``world == 1`` outside torchrun."""

    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    owns_group: bool = False  # initialised here, so destroyed here
    backend: str | None = None  # the process group's: nccl or gloo; None outside torchrun

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """Whether this process is in a process group (always under torchrun, one process
        included: the job then runs exactly as it will on more)."""
        return self.backend is not None

    def sum(self, values: list[float] | torch.Tensor) -> torch.Tensor:
        """Element-wise sum over processes (float64, on this process's device)."""
        tensor = torch.as_tensor(values, dtype=torch.float64, device=self.device)
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self.device
                                   if self.device.type == "cuda" else None)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index or 0])
            else:
                dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: str | None = None) -> Dist:
    """This process's Dist: joins the process group when launched by torchrun (which sets
    ``TORCHELASTIC_RUN_ID``) or by any launcher that sets a ``WORLD_SIZE`` over 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    launched = world > 1 or "TORCHELASTIC_RUN_ID" in os.environ
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    target = _device(device, local_rank if launched else None)
    if not launched:
        return Dist(device=target)
    if target.type == "cuda":
        torch.cuda.set_device(target)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if target.type == "cuda" else "gloo",
                                device_id=target if target.type == "cuda" else None)
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local_rank,
                local_world=local_world, device=target, owns_group=owns,
                backend=str(dist.get_backend()))


def wrap(model: torch.nn.Module, context: Dist) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when there are several processes."""
    if not context.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [context.device.index] if context.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _device(requested: str | None, local_rank: int | None) -> torch.device:
    if requested:
        try:
            device = torch.device(requested)
        except RuntimeError as exc:
            raise FinetuneConfigError("device", requested, str(exc)) from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise FinetuneConfigError("device", requested, "CUDA is not available here")
        if device.type == "cuda" and device.index is None and local_rank is not None:
            device = torch.device("cuda", local_rank)
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank or 0)
    return torch.device("cpu")
