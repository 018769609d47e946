"""`ChunkedBackend`: the CPU fallback of the fused optimizers when the native kernels cannot be built.

On CPU an optimizer step is bound by memory traffic and, on a busy machine, by the number of parallel regions
(about one per operation per tensor; each can wait a whole scheduler slice for a descheduled thread). Work that
takes several operations per element runs over chunks of `CHUNK` elements so the operations after the first
find the chunk in cache, and ``torch._fused_adamw_`` (the kernel behind ``torch.optim.AdamW(fused=True)``) does
the Adam update in one pass, over each chunk of the transformed gradient (a scratch buffer: the gradients are
not written).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .backends import AdaClipScalars, AdamArgs, Backend
from .foreach_utils import abs_max
from .transforms import spike_clip

#: Elements per chunk (4 MiB of fp32): the few buffers a chunk's preparation touches stay in the L3 cache, and a
#: busy machine sees few enough parallel regions (smaller chunks measured slower under load, larger ones slower
#: everywhere).
CHUNK = 1 << 20
#: Tensors with fewer elements take the multi-tensor path.
MIN_NUMEL = 1 << 16


def worth_chunking(param: Tensor) -> bool:
    """True when the chunked CPU path applies to ``param`` and its gradient: dense, contiguous fp32 CPU tensors
    (the state's dtype) of at least `MIN_NUMEL` elements. The others are cheaper, or only exact, as
    multi-tensor ops."""
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

    def get(self, name: str, like: Tensor) -> Tensor:
        """A buffer with ``like``'s number of elements and dtype, contents undefined."""
        buf = self._buffers.get((name, like.dtype))
        if buf is None or buf.numel() < like.numel():
            buf = torch.empty(max(like.numel(), CHUNK), dtype=like.dtype)
            self._buffers[(name, like.dtype)] = buf
        return buf[: like.numel()]


class ChunkedBackend(Backend):
    """`optimizers.backends.Backend` over cache-sized chunks, Adam in torch's fused AdamW kernel. Takes large
    fp32 CPU tensors (`worth_chunking`). One instance per optimizer (it owns scratch buffers)."""

    name = "chunked"

    def __init__(self) -> None:
        self._scratch = Scratch()

    def takes(self, param: Tensor) -> bool:
        return worth_chunking(param)

    def abs_max(self, grads: list[Tensor], dtype: torch.dtype) -> Tensor:
        return torch.stack(abs_max(grads)).to(dtype)

    def clip_norm(self, grads: list[Tensor], clip: AdaClipScalars, count: bool) -> tuple[Tensor, Tensor | None]:
        sums: list[Tensor] = []
        counts: list[Tensor] = []
        for i, g in enumerate(grads):
            parts: list[Tensor] = []
            hits: list[Tensor] = []
            for chunk in chunks(g):
                x = self._clipped(chunk, clip, i, hits if count else None)
                parts.append(torch.linalg.vector_norm(x, dtype=torch.float64).square())
            sums.append(torch.stack(parts).sum())
            if count:
                counts.append(torch.stack(hits).sum())
        norms = torch.stack(sums).sqrt().to(clip.threshold.dtype)
        return norms, (torch.stack(counts) if count else None)

    def _clipped(self, chunk: Tensor, clip: AdaClipScalars, i: int, hits: list[Tensor] | None) -> Tensor:
        """``x`` of `AdaClipScalars` for one chunk of tensor ``i``, in a scratch buffer."""
        w = self._scratch.get("x", chunk)
        torch.abs(chunk, out=w)
        torch.gt(w, clip.threshold[i], out=w)            # 1.0 where clipped, else 0.0
        if hits is not None:
            hits.append(w.sum())
        torch.lerp(clip.w_keep[i], clip.w_clip[i], w, out=w)
        return torch.mul(chunk, w, out=w)

    def adam(self, params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor],
             args: AdamArgs, *, adaclip: AdaClipScalars | None = None, spike_threshold: float = 0.0) -> None:
        if args.decay_before != 1.0:
            torch._foreach_mul_(params, args.decay_before)
        step_tensors: dict[int, Tensor] = {}
        for i, (p, m, v, g) in enumerate(zip(params, exp_avgs, exp_avg_sqs, grads)):
            t = args.steps[i]
            step = step_tensors.setdefault(t, torch.tensor(float(t)))
            # torch's kernel adds eps after dividing sqrt(v) by sqrt(1-beta2^t); SPAM adds it to sqrt(v) itself
            eps = args.eps if args.eps_corrected else args.eps / (1 - args.beta2 ** t) ** 0.5
            whole = adaclip is None and spike_threshold <= 0        # the kernel does not write the gradient
            pieces = ((p, g, m, v),) if whole else zip(chunks(p), chunks(g), chunks(m), chunks(v))
            for pc, gc, mc, vc in pieces:
                if adaclip is not None:
                    assert adaclip.factor is not None, "adaclip.factor is set once the norm is known"
                    gc = self._clipped(gc, adaclip, i, None).mul_(adaclip.factor[i])
                elif not whole:
                    bounds = (self._scratch.get("upper", gc), self._scratch.get("lower", gc))
                    gc = spike_clip(gc, vc, spike_threshold, out=self._scratch.get("x", gc), bounds=bounds)
                torch._fused_adamw_([pc], [gc], [mc], [vc], [], [step], lr=args.lr, beta1=args.beta1,
                                    beta2=args.beta2, weight_decay=0.0, eps=eps, amsgrad=False, maximize=False)
        if args.decay_after != 1.0:
            torch._foreach_mul_(params, args.decay_after)
