"""CPU fast path: element-wise optimizer work over cache-sized chunks, with PyTorch's fused Adam kernel.

On CPU an optimizer step is bound by memory traffic and, on a busy machine, by the number of parallel
regions (one per operation per tensor). Cutting each tensor into chunks of `CHUNK` elements lets the few
operations that prepare a chunk's gradient run on data still in cache, and ``torch._fused_adamw_`` (the kernel
behind ``torch.optim.AdamW(fused=True)``) then does Adam's whole update of the chunk in one pass. The helpers
here take the per-chunk gradient as a callback, so Stable-SPAM and SPAM share them.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

#: Elements per chunk (1 MiB of fp32): a few chunk-sized buffers stay in the L2/L3 caches.
CHUNK = 1 << 18


def worth_chunking(param: Tensor) -> bool:
    """True when the chunked CPU path applies to ``param`` and its gradient: dense, contiguous CPU tensors, big
    enough (a quarter of a chunk) for the path to pay off; smaller ones are cheaper as multi-tensor ops."""
    grad = param.grad
    return (param.device.type == "cpu" and param.numel() >= CHUNK // 4 and param.is_contiguous()
            and grad is not None and not grad.is_sparse and grad.is_contiguous())


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

    def get(self, name: str, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """A buffer of ``like.numel()`` elements of ``dtype`` (default ``like.dtype``), contents undefined."""
        dtype = dtype or like.dtype
        buf = self._buffers.get((name, dtype))
        if buf is None or buf.numel() < like.numel():
            buf = torch.empty(max(like.numel(), CHUNK), dtype=dtype)
            self._buffers[(name, dtype)] = buf
        return buf[: like.numel()]

    def as_dtype(self, name: str, t: Tensor, dtype: torch.dtype) -> Tensor:
        """``t`` itself if it has ``dtype``, else a copy of it in a buffer of that dtype."""
        return t if t.dtype == dtype else self.get(name, t, dtype).copy_(t)


def adam_chunks_(params: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor], grads: list[Tensor],
                 steps: list[int], chunk_grad: Callable[[int, Tensor, Tensor], Tensor], scratch: Scratch, *,
                 lr: list[float], beta1: float, beta2: float, eps: list[float], weight_decay: float = 0.0) -> None:
    """Adam (``torch.optim.AdamW``'s formula: decoupled ``weight_decay`` first) on each tensor, chunk by chunk.

    For chunk views ``g`` and ``v`` (the second moment before this step) of tensor ``i``, the gradient Adam
    consumes is ``chunk_grad(i, g, v)``; it may return a scratch buffer. ``steps[i]`` is the Adam counter after
    this step's increment; ``lr[i]`` and ``eps[i]`` are per tensor. Parameters narrower than the state (bf16
    with fp32 moments) are updated in an fp32 copy of the chunk and rounded once.
    """
    step_tensors: dict[int, Tensor] = {}
    for i, (p, m, v, g) in enumerate(zip(params, exp_avgs, exp_avg_sqs, grads)):
        if steps[i] not in step_tensors:
            step_tensors[steps[i]] = torch.tensor(float(steps[i]))
        step = step_tensors[steps[i]]
        for pc, mc, vc, gc in zip(chunks(p), chunks(m), chunks(v), chunks(g)):
            u = chunk_grad(i, gc, vc)
            target = scratch.as_dtype("param", pc, mc.dtype)
            torch._fused_adamw_([target], [u], [mc], [vc], [], [step], lr=lr[i], beta1=beta1, beta2=beta2,
                                weight_decay=weight_decay, eps=eps[i], amsgrad=False, maximize=False)
            if target is not pc:
                pc.copy_(target)
