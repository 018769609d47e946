"""The memory passes of the fused optimizers' step (`StableSPAM`, `SPAM`), behind one interface.

A fused step is split the way ``torch.optim.AdamW`` is: the optimizer gathers its lists (parameters, gradients,
moments), computes the per-tensor scalars on small stacked tensors, and hands the passes over memory to one
`Backend`, chosen once per device (see `optimizers.grouped`). Every backend has the same three methods:

* `Backend.abs_max` — ``max|g|`` per tensor (Stable-SPAM's AdaClip);
* `Backend.clip_norm` — the L2 norm of the clipped gradient divided by ``max|g|`` (for AdaGN), summed in double;
* `Backend.adam` — Adam, with the gradient transform applied inline (Stable-SPAM's clip and AdaGN scale, or
  SPAM's spike clipping against the previous second moment).

No backend writes to the gradients: ``step()`` leaves ``p.grad`` as the caller left it. The backends:

* `ForeachBackend` (here): ``torch._foreach_*`` multi-tensor ops on any device and dtype. The reference.
* `optimizers.native.NativeBackend`: C kernels built at first use (fp32/bf16 on CPU; the default there).
* `optimizers.chunked.ChunkedBackend`: cache-sized chunks and torch's fused AdamW kernel (large fp32 CPU
  tensors; the CPU default when no C compiler is available).

A CUDA backend implements the same three methods (e.g. one compiled kernel each).
"""
from __future__ import annotations

import abc
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .foreach_utils import abs_max, adam_foreach_
from .transforms import spike_clip


@dataclass
class AdaClipScalars:
    """Per-tensor scalars (1-D tensors, one entry per tensor, on the tensors' device) of Stable-SPAM's gradient
    transform. The clipped, normalised gradient is ``x = g * (w_clip if |g| > threshold else w_keep)`` (``w_keep =
    1/max|g|``, ``w_clip = T_hat/max|g|^2``); Adam consumes ``x * factor`` (``factor``: the AdaGN scale times
    ``max|g|``, set once the norm is known)."""

    threshold: Tensor
    w_clip: Tensor
    w_keep: Tensor
    factor: Tensor | None = None


@dataclass
class AdamArgs:
    """The Adam update of one partition: ``m = lerp(m, u, 1-beta1)``, ``v = beta2 v + (1-beta2) u^2``,
    ``p -= lr / (1-beta1^t) * m / (sqrt(v) / sqrt(1-beta2^t) + eps)`` (torch's placement of eps), or with
    ``eps_corrected=False`` ``p -= lr sqrt(1-beta2^t) / (1-beta1^t) * m / (sqrt(v) + eps)`` (SPAM's).
    ``steps``: each tensor's Adam counter after this step's increment. ``p`` is multiplied by ``decay_before``
    before the update and by ``decay_after`` after it (1.0: no weight decay)."""

    lr: float
    beta1: float
    beta2: float
    eps: float
    steps: list[int]
    eps_corrected: bool = True
    decay_before: float = 1.0
    decay_after: float = 1.0

    def folded(self) -> tuple[list[float], list[float]]:
        """Per tensor, ``(step_size, eps_term)`` with the update written ``p += step_size * m / (sqrt(v) +
        eps_term)``: the bias corrections folded into the two scalars."""
        sizes, epss = [], []
        for t in self.steps:
            bc2_sqrt = math.sqrt(1 - self.beta2 ** t)
            sizes.append(-self.lr * bc2_sqrt / (1 - self.beta1 ** t))
            epss.append(self.eps * bc2_sqrt if self.eps_corrected else self.eps)
        return sizes, epss


class Backend(abc.ABC):
    """The passes over memory of one fused step, for one partition of tensors: same device, same state dtype
    (the moments'); parameters (and so gradients) may mix dtypes. None of them writes to ``grads``."""

    name: str = ""

    @abc.abstractmethod
    def takes(self, param: Tensor) -> bool:
        """Whether this backend handles ``param`` (with its gradient); the others go to the reference."""

    @abc.abstractmethod
    def abs_max(self, grads: list[Tensor], dtype: torch.dtype) -> Tensor:
        """``max|g|`` of each gradient, as a 1-D tensor of ``dtype`` (the state dtype)."""

    @abc.abstractmethod
    def clip_norm(self, grads: list[Tensor], clip: AdaClipScalars, count: bool) -> tuple[Tensor, Tensor | None]:
        """Per tensor, the L2 norm of ``x`` (see `AdaClipScalars`; squares summed in double, the root rounded
        once), and with ``count`` the number of entries clipped (``|g| > threshold``); 1-D tensors of the
        scalars' dtype."""

    @abc.abstractmethod
    def adam(self, params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor],
             args: AdamArgs, *, adaclip: AdaClipScalars | None = None, spike_threshold: float = 0.0) -> None:
        """The Adam update (`AdamArgs`) on ``u``: ``x * adaclip.factor`` with ``adaclip``; else, with
        ``spike_threshold`` > 0, ``g`` clamped to ``±sqrt(spike_threshold * v)`` (v: the second moment before
        this step, SPAM's spike clipping); else ``g``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ForeachBackend(Backend):
    """The reference: ``torch._foreach_*`` multi-tensor ops, any device, any floating dtype. It works on
    copies of the gradients in the state dtype (transient memory: one gradient-sized copy per pass)."""

    name = "foreach"

    def takes(self, param: Tensor) -> bool:
        return True

    def abs_max(self, grads: list[Tensor], dtype: torch.dtype) -> Tensor:
        return torch.stack([m.to(dtype) for m in abs_max(grads)])

    def clip_norm(self, grads: list[Tensor], clip: AdaClipScalars, count: bool) -> tuple[Tensor, Tensor | None]:
        dtype = clip.threshold.dtype
        work = [g.to(dtype, copy=True) for g in grads]
        ind = _clip_indicator(work, clip)
        counts = torch.stack(torch._foreach_norm(ind, 1)) if count else None
        torch._foreach_mul_(work, torch._foreach_lerp(list(clip.w_keep.unbind()), list(clip.w_clip.unbind()), ind))
        wide = torch.float64 if work[0].device.type != "mps" else None      # MPS has no float64
        return torch.stack(torch._foreach_norm(work, 2, dtype=wide)).to(dtype), counts

    def adam(self, params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor],
             args: AdamArgs, *, adaclip: AdaClipScalars | None = None, spike_threshold: float = 0.0) -> None:
        dtype = exp_avgs[0].dtype
        work = [g.to(dtype, copy=True) for g in grads]
        if adaclip is not None:
            assert adaclip.factor is not None, "adaclip.factor is set once the norm is known"
            ind = _clip_indicator(work, adaclip)
            torch._foreach_mul_(work, torch._foreach_lerp(list(adaclip.w_keep.unbind()),
                                                          list(adaclip.w_clip.unbind()), ind))
            torch._foreach_mul_(work, list(adaclip.factor.unbind()))
        elif spike_threshold > 0:
            for g, v in zip(work, exp_avg_sqs):
                spike_clip(g, v, spike_threshold, out=g)
        if args.decay_before != 1.0:
            torch._foreach_mul_(params, args.decay_before)
        step_sizes, eps_terms = args.folded()
        adam_foreach_(params, exp_avgs, exp_avg_sqs, work, beta1=args.beta1, beta2=args.beta2,
                      step_sizes=step_sizes, eps_terms=eps_terms)
        if args.decay_after != 1.0:
            torch._foreach_mul_(params, args.decay_after)


def _clip_indicator(grads: list[Tensor], clip: AdaClipScalars) -> list[Tensor]:
    """Per tensor, exactly 1.0 where ``|g| > threshold``, else 0.0 (as multi-tensor ops)."""
    ind = list(torch._foreach_abs(grads))
    torch._foreach_sub_(ind, list(clip.threshold.unbind()))
    torch._foreach_sign_(ind)
    torch._foreach_clamp_min_(ind, 0.0)
    return ind
