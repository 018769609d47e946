"""`StableSPAM`: the mended Stable-SPAM (SPEC §1.1) as one fused multi-tensor step."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import StatsAccumulator
from .chunked import Scratch, adam_chunks_, chunks
from .foreach_utils import abs_max, bias_correction, state_dtype
from .grouped import GroupedStepOptimizer
from .schedules import momentum_scale
from .validation import validate

DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, gamma1=0.7, gamma2=0.9, gamma3=0.999,
                reset_interval=1000, total_T=None, eta_min=0.5)


class StableSPAM(GroupedStepOptimizer):
    """Stable-SPAM (Huang et al. 2025, arXiv 2502.17055), mended variant — the suite's ``stable_spam`` recipe.

    Per tensor, in this order: decoupled weight decay ``p *= 1 - lr*wd``; **AdaClip** (``T = g3*T + (1-g3)*max|g|``,
    ``T_hat = T/(1-g3^k)``, entries with ``|g| > T_hat`` become ``g/max|g|*T_hat``); **AdaGN** (``n = ||g||``,
    ``m = g1*m + (1-g1)*n``, ``v = g2*v + (1-g2)*n^2``, ``g <- g/n * m_hat/(sqrt(v_hat)+eps)``, g unchanged when
    n = 0); **MoRet** (when the global step t is a multiple of ``reset_interval``, Adam's moments are zeroed in
    place and its counter restarts, so that step is an ordinary first Adam step); **Adam**
    (``p -= lr/(1-b1^a) * m/(sqrt(v)/sqrt(1-b2^a) + eps)``). With ``total_T`` set, ``b1`` and ``g1`` are
    multiplied by ``eta_min + (1-eta_min)(1+cos(pi t/(total_T+1)))/2``, held at ``eta_min`` after ``total_T+1``.

    Mended with respect to the authors' code (see `optimizers.stable_spam_ref.StableSPAMRef` for theirs): state in
    fp32 (or the parameter's dtype if wider); the reset step uses the fresh moments; AdaClip/AdaGN bias
    corrections count their own steps (``adaclip.step``, ``adagn.step``), untouched by resets; the global step is
    in ``state_dict()`` so a resumed run continues bit for bit. Like ``torch.nn.utils.clip_grad_norm_`` (and the
    published code), ``step()`` rewrites ``p.grad``: afterwards it holds the gradient the Adam update consumed.

    Defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0, gamma1 0.7, gamma2 0.9 (the paper's 4-bit
    values; 0.85 / 0.99999 for BF16), gamma3 0.999, reset_interval 1000 (0 disables resets), total_T None,
    eta_min 0.5. Hyper-parameters live in the param groups and may differ per group.

    Speed: no host synchronisation; besides ``max|g|``, one pass clips the gradient in place (scaled by
    ``1/max|g|`` so its norm cannot overflow) and sums its squares, and one pass is Adam, which takes the AdaGN
    factor as a per-tensor scalar. Per-tensor scalars (AdaClip threshold, AdaGN scale) are computed on stacked
    0-dim tensors. On CPU, for large fp32 tensors, the clip pass runs chunk by chunk in cache and Adam is PyTorch's
    fused kernel (`optimizers.chunked`); elsewhere, for small or bf16/fp16/fp64 tensors and with
    ``cpu_fast_path = False``, both passes are ``torch._foreach_*`` multi-tensor ops.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, gamma1: float = 0.7, gamma2: float = 0.9, gamma3: float = 0.999,
                 reset_interval: int = 1000, total_T: int | None = None, eta_min: float = 0.5):
        given = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, gamma1=gamma1, gamma2=gamma2,
                     gamma3=gamma3, reset_interval=reset_interval, total_T=total_T, eta_min=eta_min)
        super().__init__(params, validate(type(self).__name__, given, DEFAULTS))
        self._counters = {"step": 0}
        self._scratch = Scratch()

    def _state_of(self, p: Tensor) -> dict:
        state = self.state[p]
        if not state:
            dtype = state_dtype(p)
            scalar = lambda: torch.zeros((), dtype=dtype, device=p.device)  # noqa: E731
            state.update({
                "step": 0,                                  # Adam's counter (restarted by resets)
                "exp_avg": torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format),
                "adaclip.step": 0, "adaclip.ema": scalar(),  # AdaClip: counter, EMA of max|g|
                "adagn.step": 0, "adagn.m": scalar(), "adagn.v": scalar(),  # AdaGN: counter, EMAs of ||g||, ||g||^2
            })
        return state

    def _update(self, params: list[Tensor], group: dict, stats: StatsAccumulator | None, fast: bool) -> None:
        """The step for tensors of one group sharing a device and a state dtype (and the path to take)."""
        grads = [p.grad for p in params]
        if any(g.is_sparse for g in grads):
            raise RuntimeError("StableSPAM does not support sparse gradients")
        before = torch.stack(torch._foreach_norm(grads)) if stats is not None else None
        states = [self._state_of(p) for p in params]
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        gamma1, gamma2, gamma3 = group["gamma1"], group["gamma2"], group["gamma3"]
        t, interval = self._counters["step"], group["reset_interval"]
        scale = momentum_scale(t, group["total_T"], group["eta_min"], hold=True)
        beta1, gamma1 = beta1 * scale, gamma1 * scale
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]
        dtype = exp_avgs[0].dtype
        # the gradients this step rewrites: p.grad itself, or an fp32 copy of a narrower one
        work = grads if grads[0].dtype == dtype else [g.to(dtype) for g in grads]

        if group["weight_decay"] != 0 and not fast:     # the chunked path decays inside the fused kernel
            torch._foreach_mul_(params, 1 - lr * group["weight_decay"])
        reset = interval > 0 and t % interval == 0
        if reset:
            torch._foreach_zero_(exp_avgs + exp_avg_sqs)
        for s in states:
            s["step"] = 1 if reset else s["step"] + 1
            s["adaclip.step"] += 1
            s["adagn.step"] += 1
        adam_steps = [s["step"] for s in states]
        norm_steps = [s["adagn.step"] for s in states]

        # AdaClip threshold per tensor, on stacked scalars. Entries above it are multiplied by `ratio`.
        gmax = torch.stack(abs_max(work))
        ema = torch.stack([s["adaclip.ema"] for s in states]).mul_(gamma3).add_(gmax, alpha=1 - gamma3)
        threshold = ema / bias_correction(gamma3, [s["adaclip.step"] for s in states], ema)
        inv_gmax = torch.where(gmax > 0, gmax.reciprocal(), 0.0)   # gmax = 0: the gradient is 0, nothing to clip
        ratio = threshold * inv_gmax

        # Pass 1: work <- clip(g) / max|g| (so its sum of squares neither overflows nor underflows) and its norm.
        counts: list[Tensor] | None = [] if stats is not None else None
        weights = (threshold.unbind(), inv_gmax.unbind(), (ratio * inv_gmax).unbind())
        sumsq = (self._clip_chunked if fast else _clip_foreach)(work, weights, counts)
        norm = gmax * sumsq.sqrt()

        # AdaGN scale per tensor: the Adam update consumes gn_scale * clip(g) = (gn_scale * max|g|) * work.
        m = torch.stack([s["adagn.m"] for s in states]).mul_(gamma1).add_(norm, alpha=1 - gamma1)
        v = torch.stack([s["adagn.v"] for s in states]).mul_(gamma2).add_(norm * norm, alpha=1 - gamma2)
        target = (m / bias_correction(gamma1, norm_steps, m)) / (
            (v / bias_correction(gamma2, norm_steps, v)).sqrt() + eps)
        gn_scale = torch.where(norm > 0, target / norm, 1.0)
        for key, values in (("adaclip.ema", ema), ("adagn.m", m), ("adagn.v", v)):
            torch._foreach_copy_([s[key] for s in states], list(values.unbind()))
        factor = gn_scale * gmax

        # Pass 2: Adam on factor * work, which work then holds.
        if fast:
            adam_chunks_(params, exp_avgs, exp_avg_sqs, work, adam_steps, lr=[lr] * len(params), beta1=beta1,
                         beta2=beta2, eps=[eps] * len(params), weight_decay=group["weight_decay"],
                         grad_divisors=list(factor.reciprocal().float().unbind()))
        else:
            torch._foreach_mul_(work, list(factor.unbind()))
            _adam_foreach(params, exp_avgs, exp_avg_sqs, work, adam_steps, lr=lr, beta1=beta1, beta2=beta2, eps=eps)
        if work is not grads:
            torch._foreach_copy_(grads, work)

        if stats is not None:
            clipped = torch.stack(counts).sum() if counts else None
            stats.add(before, gn_scale * norm, clipped, sum(g.numel() for g in grads), reset)

    def _clip_chunked(self, grads: list[Tensor], weights: tuple, counts: list[Tensor] | None) -> Tensor:
        """CPU path of pass 1, chunk by chunk: ``g *= clipped if |g| > threshold else kept`` in place;
        returns each tensor's sum of squares afterwards. ``weights = (threshold, kept, clipped)``, sequences of
        0-dim tensors; appends the clipped counts to ``counts`` if given."""
        sums = []
        for g, threshold, kept, clipped in zip(grads, *weights):
            parts = []
            for chunk in chunks(g):
                w = self._scratch.get("weight", chunk)
                torch.abs(chunk, out=w)
                torch.gt(w, threshold, out=w)         # 1.0 where clipped, else 0.0
                if counts is not None:
                    counts.append(w.sum())
                chunk.mul_(torch.lerp(kept, clipped, w, out=w))
                parts.append(torch.dot(chunk, chunk))
            sums.append(parts[0] if len(parts) == 1 else torch.stack(parts).sum())
        return torch.stack(sums)


def _clip_foreach(grads: list[Tensor], weights: tuple, counts: list[Tensor] | None) -> Tensor:
    """Multi-tensor pass 1: ``g *= clipped if |g| > threshold else kept`` in place; returns each tensor's sum of
    squares afterwards. Same arguments as `StableSPAM._clip_chunked`."""
    threshold, kept, clipped = weights
    ind = torch._foreach_abs(grads)
    torch._foreach_sub_(ind, list(threshold))
    torch._foreach_sign_(ind)
    torch._foreach_clamp_min_(ind, 0.0)        # exactly 1.0 where |g| > threshold, else 0.0
    if counts is not None:
        counts.extend(torch._foreach_norm(ind, 1))
    torch._foreach_mul_(grads, torch._foreach_lerp(list(kept), list(clipped), ind))
    return torch.stack(torch._foreach_norm(grads)).square()


def _adam_foreach(params, exp_avgs, exp_avg_sqs, grads, steps, *, lr, beta1, beta2, eps) -> None:
    """Adam with multi-tensor ops (no weight decay), bias corrections folded into step size and eps."""
    bc1 = [1 - beta1 ** k for k in steps]
    bc2_sqrt = [math.sqrt(1 - beta2 ** k) for k in steps]
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_add_(denom, [eps * b2 for b2 in bc2_sqrt])
    torch._foreach_addcdiv_(params, exp_avgs, denom, [-lr * b2 / b1 for b1, b2 in zip(bc1, bc2_sqrt)])
