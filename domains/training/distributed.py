"""Data parallelism for the shared trainer: rank and world size, the DDP wrapper, cross-rank means.

Under ``torchrun`` every rank runs the same loop on its own slice of each global batch; the model is wrapped in
DistributedDataParallel, which averages gradients across ranks during ``backward()``. Without an initialised
process group everything here is a no-op (rank 0 of a world of 1).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size under ``torch.distributed`` (``(0, 1)`` when not initialised)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel (on ``device``'s GPU when it is one)."""
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def no_gradient_sync(model: nn.Module):
    """A context in which ``backward()`` does not all-reduce gradients (DDP's ``no_sync``; else nothing)."""
    return model.no_sync() if hasattr(model, "no_sync") else nullcontext()


def mean_across_ranks(value: torch.Tensor, world: int) -> float:
    """The mean of a scalar tensor over the ranks, as a Python float (the value itself when ``world`` is 1)."""
    if world > 1:
        value = value.float().clone()
        torch.distributed.all_reduce(value)
        value /= world
    return float(value)
