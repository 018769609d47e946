"""CPU fast path: element-wise optimizer work over cache-sized chunks, and PyTorch's fused AdamW kernel.

On CPU an optimizer step is bound by memory traffic and, on a busy machine, by the number of parallel regions
(about one per operation per tensor; each can wait a whole scheduler slice for a descheduled thread). Work that
takes several operations per element runs over chunks of `CHUNK` elements so the operations after the first
find the chunk in cache, and ``torch._fused_adamw_`` (the kernel behind ``torch.optim.AdamW(fused=True)``) does
the whole Adam update in one pass. Stable-SPAM and SPAM share `adam_chunks_`.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

#: Elements per chunk (4 MiB of fp32): the few buffers a chunk's preparation touches stay in the L3 cache, and a
#: busy machine sees few enough parallel regions (smaller chunks measured slower under load, larger ones slower
#: everywhere).
CHUNK = 1 << 20
#: Tensors with fewer elements take the multi-tensor path.
MIN_NUMEL = 1 << 16


def worth_chunking(param: Tensor) -> bool:
    """True when the chunked CPU path applies to ``param`` and its gradient: dense, contiguous fp32 CPU tensors
    (the state's dtype; the kernel's gradient divisor is fp32) of at least `MIN_NUMEL` elements. The others are
    cheaper, or only exact, as multi-tensor ops."""
    grad = param.grad
    return (param.device.type == "cpu" and param.dtype == torch.float32
            and param.numel() >= MIN_NUMEL and param.is_contiguous()
            and grad is not None and grad.dtype == param.dtype and not grad.is_sparse and grad.is_contiguous())


def chunks(t: Tensor) -> tuple[Tensor, ...]:
    """Contiguous flat views of ``t`` of at most `CHUNK` elements (they share its memory)."""
    return t.view(-1).split(CHUNK)


class Scratch:
    """Reusable flat buffers, one per (name, dtype), grown on demand; views of them are handed out."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, torch.dtype], Tensor] = {}

    def __getstate__(self) -> dict:
        return {}                      # buffers are not worth copying or pickling

    def __setstate__(self, state: dict) -> None:
        self._buffers = {}

    def get(self, name: str, like: Tensor) -> Tensor:
        """A buffer with ``like``'s number of elements and dtype, contents undefined."""
        buf = self._buffers.get((name, like.dtype))
        if buf is None or buf.numel() < like.numel():
            buf = torch.empty(max(like.numel(), CHUNK), dtype=like.dtype)
            self._buffers[(name, like.dtype)] = buf
        return buf[: like.numel()]


def adam_chunks_(params: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor], grads: list[Tensor],
                 steps: list[int], *, lr: list[float], beta1: float, beta2: float, eps: list[float],
                 weight_decay: float = 0.0, grad_divisors: list[Tensor] | None = None,
                 prepare: Callable[[int, Tensor, Tensor], None] | None = None) -> None:
    """AdamW (``torch.optim.AdamW``'s formula; decoupled ``weight_decay`` first) on each tensor.

    ``prepare(i, g, v)``, if given, first rewrites the gradient chunk ``g`` of tensor ``i`` in place (``v`` is
    the chunk of the second moment before this step), chunk by chunk so the kernel finds it in cache; without it
    each tensor goes to the kernel whole. The gradient is then divided by ``grad_divisors[i]`` (a
    0-dim float32 tensor), if given, inside the kernel, which writes the divided gradient back: afterwards
    ``grads`` hold what the update consumed. ``steps[i]`` is the Adam counter after this step's increment;
    ``lr[i]`` and ``eps[i]`` are per tensor.
    """
    step_tensors: dict[int, Tensor] = {}
    for i, (p, m, v, g) in enumerate(zip(params, exp_avgs, exp_avg_sqs, grads)):
        if steps[i] not in step_tensors:
            step_tensors[steps[i]] = torch.tensor(float(steps[i]))
        step = [step_tensors[steps[i]]]
        divisor = None if grad_divisors is None else grad_divisors[i]
        pieces = chunks if prepare is not None else (lambda t: (t,))
        for pc, mc, vc, gc in zip(pieces(p), pieces(m), pieces(v), pieces(g)):
            if prepare is not None:
                prepare(i, gc, vc)
            torch._fused_adamw_([pc], [gc], [mc], [vc], [], step, lr=lr[i], beta1=beta1, beta2=beta2,
                                weight_decay=weight_decay, eps=eps[i], amsgrad=False, maximize=False,
                                grad_scale=divisor)
