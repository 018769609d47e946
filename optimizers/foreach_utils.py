"""Small multi-tensor helpers shared by the optimizers. None of them synchronises with the device."""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Sequence

import torch
from torch import Tensor


def state_dtype(param: Tensor) -> torch.dtype:
    """Dtype of the mended optimizers' state for ``param``: fp32, or the parameter's dtype if it is wider."""
    return torch.promote_types(param.dtype, torch.float32)


def abs_max(tensors: Sequence[Tensor]) -> list[Tensor]:
    """``max|t|`` of each tensor, as 0-dim tensors of the tensor's dtype (0 for an empty tensor).

    On CPU, large tensors use ``aminmax`` (one vectorised pass, ~10x faster than ``norm(ord=inf)`` there);
    the others go through one multi-tensor call.
    """
    large = [t.device.type == "cpu" and t.numel() >= 1 << 14 for t in tensors]
    rest = [t for t, big in zip(tensors, large) if not big and t.numel() > 0]
    small = iter(torch._foreach_norm(rest, ord=math.inf) if rest else ())
    out = []
    for t, big in zip(tensors, large):
        if big:
            lo, hi = torch.aminmax(t)
            out.append(torch.maximum(hi, lo.neg()))
        else:
            out.append(next(small) if t.numel() > 0 else t.new_zeros(()))
    return out


def global_norm(tensors: Sequence[Tensor]) -> Tensor:
    """L2 norm of all the tensors together, as a 0-dim float32 tensor (0 when there are none)."""
    if not tensors:
        return torch.zeros((), dtype=torch.float32)
    device = tensors[0].device
    norms = [n.to(device=device, dtype=torch.float32) for n in torch._foreach_norm(list(tensors))]
    return torch.linalg.vector_norm(torch.stack(norms))


def bias_correction(beta: float, counts: Sequence[int], like: Tensor) -> float | Tensor:
    """``1 - beta**k`` for each per-tensor counter ``k``: a Python float when all counters agree (the usual
    case), else a vector on ``like``'s device and dtype."""
    first = counts[0]
    if all(k == first for k in counts):
        return 1.0 - beta ** first
    return torch.tensor([1.0 - beta ** k for k in counts], dtype=like.dtype).to(like.device, non_blocking=True)


def adam_foreach_(params: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor], grads: list[Tensor], *,
                  beta1: float, beta2: float, step_sizes: list[float], eps_terms: list[float]) -> None:
    """Adam with multi-tensor ops, the bias corrections folded into the per-tensor scalars:
    ``m = lerp(m, g, 1-beta1)``, ``v = beta2 v + (1-beta2) g^2``, ``p += step_size * m / (sqrt(v) + eps_term)``.
    No weight decay. The one multi-tensor Adam of the package (see `optimizers.backends.AdamArgs.folded`)."""
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_add_(denom, eps_terms)
    torch._foreach_addcdiv_(params, exp_avgs, denom, step_sizes)


def group_indices(keys: Iterable[object]) -> list[list[int]]:
    """Positions of equal keys, grouped, in first-seen order (e.g. to split tensors by device and dtype)."""
    groups: dict[object, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    return list(groups.values())
