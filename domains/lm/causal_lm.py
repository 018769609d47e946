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
    return next_token_cross_entropy(model(input_ids=ids).logits, ids, reduction)


def next_token_cross_entropy(logits: Tensor, ids: Tensor, reduction: str = "mean", ignore_last: bool = False) -> Tensor:
    """Cross-entropy of token ``t+1`` of ``ids`` (B, T) under ``logits[:, t]`` (B, T, V), in fp32.

    The same numbers, bit for bit, as ``F.cross_entropy(logits[:, :-1].reshape(-1, V).float(), ids[:, 1:].reshape(-1))``
    -- the loss and the gradient of ``logits`` -- without that path's two copies of the logits (the slice made
    contiguous, and the zero-filled gradient its backward scatters into). ``ignore_last=True`` instead reproduces
    transformers' causal-LM loss (``labels=ids``: the last position's label ignored, the mean over the rest), whose
    loss value can differ from the sliced one in the last bit (another order of summation); its gradient does not.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', not {reduction!r}")
    return _NextTokenCrossEntropy.apply(logits, ids, reduction, ignore_last)


class _NextTokenCrossEntropy(torch.autograd.Function):
    """log_softmax over every position; the loss from the targets' log-probabilities; backward writes the gradient
    of the last position as zeros instead of slicing (the gradient of the kept rows is the reference's own kernel)."""

    @staticmethod
    def forward(ctx, logits, ids, reduction, ignore_last):
        batch, length, vocab = logits.shape
        log_probs = torch.log_softmax(logits.reshape(-1, vocab).float(), dim=-1)
        targets = ids[:, 1:]
        if ignore_last:
            labels = F.pad(targets, (0, 1), value=-100).reshape(-1)
            loss = F.nll_loss(log_probs, labels, ignore_index=-100, reduction=reduction)
        else:  # the targets' log-probabilities in the reference's row order: the same summation, the same sum
            picked = log_probs.view(batch, length, vocab)[:, :-1].gather(-1, targets.unsqueeze(-1))
            loss = F.nll_loss(picked.reshape(-1, 1), targets.new_zeros(targets.numel()), reduction=reduction)
        ctx.save_for_backward(log_probs, targets)
        ctx.reduction, ctx.logits_dtype = reduction, logits.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        log_probs, targets = ctx.saved_tensors
        batch, kept = targets.shape
        vocab = log_probs.shape[-1]
        # nll_loss's backward: -grad (over the count for "mean") at each target, zero elsewhere
        scale = grad_loss / (batch * kept) if ctx.reduction == "mean" else grad_loss
        grad_log_probs = torch.zeros_like(log_probs).view(batch, kept + 1, vocab)
        grad_log_probs[:, :-1].scatter_(-1, targets.unsqueeze(-1), (-scale).expand(batch, kept, 1))
        grad_logits = torch._log_softmax_backward_data(grad_log_probs.view(-1, vocab), log_probs, -1, log_probs.dtype)
        return grad_logits.view(batch, kept + 1, vocab).to(ctx.logits_dtype), None, None, None


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
