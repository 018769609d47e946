"""Causal-LM training pieces for any decoder-only model (LLaMA, OLMoE): loss and perplexity.

* :func:`next_token_loss` -- cross-entropy of predicting token ``t+1`` from tokens ``<= t`` (a pure ``loss_fn``
  for :func:`domains.training.train`, which runs it in micro-batches when a config asks for them);
* :func:`evaluate_lm` -- token-weighted validation loss and perplexity, split across data-parallel ranks.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from domains.training.distributed import rank_and_world


def next_token_loss(model: nn.Module, ids: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy of every next token of ``ids`` (B, T) under ``model`` (a Hugging Face causal LM)."""
    logits = model(input_ids=ids).logits
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1),
                           reduction=reduction)


@torch.no_grad()
def evaluate_lm(model: nn.Module, batches: Iterable[Tensor], device: torch.device) -> dict[str, float]:
    """``val_loss`` (token-weighted mean next-token loss) and ``val_ppl = exp(val_loss)`` over ``batches``.

    Under ``torch.distributed`` each rank evaluates every ``world``-th batch and the sums are all-reduced,
    so every rank returns the same numbers.
    """
    rank, world = rank_and_world()
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
