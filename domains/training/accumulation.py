"""One forward/backward pass over a batch, in micro-batches when asked (gradient accumulation).

The loss function stays pure (``loss_fn(model, batch)`` returns the batch's mean loss, or ``(loss, extras)``
with extras a dict of detached scalars); this module splits the batch, weighs each micro-batch's loss by its
share of the rows, back-propagates each one (gradients add up in ``.grad``; under DistributedDataParallel only
the last backward all-reduces them) and returns the whole batch's mean loss and the row-weighted extras.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable

import torch
from torch import Tensor, nn

from domains.training.distributed import no_gradient_sync


def split_loss(output: Tensor | tuple[Tensor, dict]) -> tuple[Tensor, dict]:
    """A loss function's output as ``(loss, extras)`` (extras ``{}`` when it returned a bare tensor)."""
    if isinstance(output, tuple):
        loss, extras = output
        return loss, dict(extras)
    return output, {}


def micro_batches(batch: Any, size: int) -> list:
    """``batch`` (a tensor, or a tuple/list of tensors with the same rows) cut into chunks of ``size`` rows;
    ``[batch]`` when ``size`` is 0 or covers the batch."""
    rows = _rows(batch)
    if not size or size >= rows:
        return [batch]
    if isinstance(batch, Tensor):
        return list(batch.split(size))
    return [type(batch)(parts) for parts in zip(*(part.split(size) for part in batch))]


def forward_backward(model: nn.Module, loss_fn: Callable, batch: Any, micro_batch_size: int = 0,
                     autocast=None) -> tuple[Tensor, dict]:
    """Back-propagate ``loss_fn(model, batch)``; return the batch's mean loss (detached) and its extras.

    The forward passes run under ``autocast`` (a context manager; None: none), the backward passes outside it.
    """
    autocast = autocast if autocast is not None else nullcontext()
    chunks = micro_batches(batch, micro_batch_size)
    if len(chunks) == 1:
        with autocast:
            loss, extras = split_loss(loss_fn(model, batch))
        loss.backward()
        return loss.detach(), extras
    rows = _rows(batch)
    total: Tensor | None = None
    extras: dict[str, Tensor] = {}
    for index, chunk in enumerate(chunks):
        weight = _rows(chunk) / rows  # equal-length rows: a row-weighted mean
        last = index == len(chunks) - 1
        with nullcontext() if last else no_gradient_sync(model):
            with autocast:
                loss, chunk_extras = split_loss(loss_fn(model, chunk))
                weighted = loss * weight
            weighted.backward()
        for key, value in chunk_extras.items():
            extras[key] = extras.get(key, 0.0) + torch.as_tensor(value).detach().float() * weight
        if total is None:
            total = torch.zeros((), dtype=torch.float32, device=weighted.device)
        total += weighted.detach()
    return total, extras


def _rows(batch: Any) -> int:
    return len(batch) if isinstance(batch, Tensor) else len(batch[0])
