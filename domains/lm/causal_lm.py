"""Causal-LM training pieces for any decoder-only model (LLaMA, OLMoE): loss and perplexity.

* :func:`next_token_loss` -- cross-entropy of predicting token ``t+1`` from tokens ``<= t``;
* :func:`accumulated_loss` -- the same over a batch processed in micro-batches (gradient accumulation),
  in the shape :func:`domains.training.loop.train` expects from a ``loss_fn``;
* :func:`evaluate_lm` -- token-weighted validation loss and perplexity, split across data-parallel ranks.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def next_token_loss(model: nn.Module, ids: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy of every next token of ``ids`` (B, T) under ``model`` (a Hugging Face causal LM)."""
    logits = model(input_ids=ids).logits
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1),
                           reduction=reduction)


def accumulated_loss(model: nn.Module, ids: Tensor, micro_batch_size: int = 0,
                     loss_of: Callable[[nn.Module, Tensor], Tensor | tuple[Tensor, dict]] = next_token_loss):
    """Mean loss of ``ids``, run in micro-batches of ``micro_batch_size`` rows (0: at once).

    ``loss_of(model, rows)`` gives a micro-batch's mean loss, or ``(loss, extras)`` with extras a dict of
    detached scalars (telemetry); the result has the same form, the extras being their row-weighted mean over
    the micro-batches. All micro-batches but the last are back-propagated here (gradients accumulate in
    ``.grad``; under DistributedDataParallel without synchronising); the returned tensor's *gradient* is the
    last micro-batch's share and its *value* the whole batch's mean loss, so the caller's ``backward()``
    completes the accumulation and sees the true loss.
    """
    if not micro_batch_size or micro_batch_size >= len(ids):
        return loss_of(model, ids)
    chunks = ids.split(micro_batch_size)
    weights = [len(chunk) / len(ids) for chunk in chunks]  # equal-length rows: a row-weighted mean
    done = ids.new_zeros((), dtype=torch.float32)
    extras: dict[str, Tensor] = {}
    no_sync = getattr(model, "no_sync", nullcontext)

    def weighted(chunk: Tensor, weight: float) -> Tensor:
        result = loss_of(model, chunk)
        loss, chunk_extras = result if isinstance(result, tuple) else (result, None)
        if chunk_extras is not None:
            for key, value in chunk_extras.items():
                extras[key] = extras.get(key, 0.0) + torch.as_tensor(value).detach().float() * weight
        return loss * weight

    with no_sync():
        for chunk, weight in zip(chunks[:-1], weights[:-1]):
            loss = weighted(chunk, weight)
            loss.backward()
            done += loss.detach()
    total = weighted(chunks[-1], weights[-1]) + done
    return (total, extras) if extras else total


@torch.no_grad()
def evaluate_lm(model: nn.Module, batches: Iterable[Tensor], device: torch.device) -> dict[str, float]:
    """``val_loss`` (token-weighted mean next-token loss) and ``val_ppl = exp(val_loss)`` over ``batches``.

    Under ``torch.distributed`` each rank evaluates every ``world``-th batch and the sums are all-reduced,
    so every rank returns the same numbers.
    """
    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) \
        if torch.distributed.is_available() and torch.distributed.is_initialized() else (0, 1)
    totals = torch.zeros(2, dtype=torch.float64, device=device)  # summed loss, token count
    for index, ids in enumerate(batches):
        if index % world != rank:
            continue
        ids = ids.to(device)
        totals[0] += next_token_loss(model, ids, reduction="sum").double()
        totals[1] += ids[:, 1:].numel()
    if world > 1:
        torch.distributed.all_reduce(totals)
    loss = float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")
    return {"val_loss": loss, "val_ppl": math.exp(loss) if loss < 700 else float("inf")}
