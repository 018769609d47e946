"""`StableSPAM`: the mended Stable-SPAM (SPEC §1.1) as one fused multi-tensor step."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import InstrumentedOptimizer, StatsAccumulator
from .chunked import Scratch, adam_chunks_, chunks, worth_chunking
from .foreach_utils import abs_max, bias_correction, group_indices, state_dtype
from .schedules import momentum_scale
from .validation import validate

DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, gamma1=0.7, gamma2=0.9, gamma3=0.999,
                reset_interval=1000, total_T=None, eta_min=0.5)


class StableSPAM(InstrumentedOptimizer):
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
    in ``state_dict()`` so a resumed run continues bit for bit. Gradients are read, never modified.

    Defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0, gamma1 0.7, gamma2 0.9 (the paper's 4-bit
    values; 0.85 / 0.99999 for BF16), gamma3 0.999, reset_interval 1000 (0 disables resets), total_T None,
    eta_min 0.5. Hyper-parameters live in the param groups and may differ per group.

    Speed: no host synchronisation and two passes over the gradients besides ``max|g|``. Per-tensor scalars
    (AdaClip threshold, AdaGN scale) are computed on stacked 0-dim tensors; the clip and the AdaGN scale become one
    per-entry weight on the gradient that Adam consumes, nothing is written back into the gradient. On CPU the
    passes run chunk by chunk with PyTorch's fused Adam kernel (`optimizers.chunked`); elsewhere (and for
    ``cpu_fast_path = False``) they are ``torch._foreach_*`` multi-tensor ops.
    """

    #: Use the chunked CPU path (`optimizers.chunked`) for large dense CPU tensors; False forces the
    #: multi-tensor (``torch._foreach_*``) path that accelerators and small tensors use.
    cpu_fast_path = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, gamma1: float = 0.7, gamma2: float = 0.9, gamma3: float = 0.999,
                 reset_interval: int = 1000, total_T: int | None = None, eta_min: float = 0.5):
        given = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, gamma1=gamma1, gamma2=gamma2,
                     gamma3=gamma3, reset_interval=reset_interval, total_T=total_T, eta_min=eta_min)
        super().__init__(params, validate(type(self).__name__, given, DEFAULTS))
        self._counters = {"step": 0}
        self._scratch = Scratch()

    @torch.no_grad()
    def step(self, closure=None):
        """One Stable-SPAM step for every parameter with a gradient. Returns the closure's loss, if any."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._counters["step"] += 1
        stats = StatsAccumulator() if self.collect_stats else None
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            chunked = [self.cpu_fast_path and worth_chunking(p) for p in params]
            for idx in group_indices((p.device, state_dtype(p), c) for p, c in zip(params, chunked)):
                self._update([params[i] for i in idx], group, stats, chunked[idx[0]])
        self.last_stats = stats.result() if stats is not None else None
        return loss

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
        """The step for tensors of one group sharing a device and a state dtype."""
        grads = [p.grad for p in params]
        if any(g.is_sparse for g in grads):
            raise RuntimeError("StableSPAM does not support sparse gradients")
        states = [self._state_of(p) for p in params]
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        gamma1, gamma2, gamma3 = group["gamma1"], group["gamma2"], group["gamma3"]
        t, interval = self._counters["step"], group["reset_interval"]
        scale = momentum_scale(t, group["total_T"], group["eta_min"], hold=True)
        beta1, gamma1 = beta1 * scale, gamma1 * scale
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]
        dtype = exp_avgs[0].dtype

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
        gmax = torch.stack(abs_max(grads)).to(dtype)
        ema = torch.stack([s["adaclip.ema"] for s in states]).mul_(gamma3).add_(gmax, alpha=1 - gamma3)
        threshold = ema / bias_correction(gamma3, [s["adaclip.step"] for s in states], ema)
        inv_gmax = torch.where(gmax > 0, gmax.reciprocal(), 0.0)   # gmax = 0: the gradient is 0, nothing to clip
        ratio = threshold * inv_gmax

        # Norm of the clipped gradient, summed on g/max|g| so it neither overflows nor underflows.
        counts: list[Tensor] | None = [] if stats is not None else None
        weights = (threshold.unbind(), ((ratio - 1) * inv_gmax).unbind(), inv_gmax.unbind())
        sumsq = (self._sumsq_chunked if fast else _sumsq_foreach)(grads, weights, counts, dtype)
        norm = gmax * sumsq.sqrt()

        # AdaGN scale per tensor: the clipped gradient is multiplied by gn_scale.
        m = torch.stack([s["adagn.m"] for s in states]).mul_(gamma1).add_(norm, alpha=1 - gamma1)
        v = torch.stack([s["adagn.v"] for s in states]).mul_(gamma2).add_(norm * norm, alpha=1 - gamma2)
        target = (m / bias_correction(gamma1, norm_steps, m)) / (
            (v / bias_correction(gamma2, norm_steps, v)).sqrt() + eps)
        gn_scale = torch.where(norm > 0, target / norm, 1.0)
        for key, values in (("adaclip.ema", ema), ("adagn.m", m), ("adagn.v", v)):
            torch._foreach_copy_([s[key] for s in states], list(values.unbind()))

        # Adam on gn_scale * clipped g, the clip and the scale folded into one per-entry weight.
        weights = (weights[0], (gn_scale * (ratio - 1)).unbind(), gn_scale.unbind())
        if fast:
            adam_chunks_(params, exp_avgs, exp_avg_sqs, grads, adam_steps,
                         lambda i, g, _v: self._weighted_chunk(g, [w[i] for w in weights], None, dtype),
                         self._scratch, lr=[lr] * len(params), beta1=beta1, beta2=beta2, eps=[eps] * len(params),
                         weight_decay=group["weight_decay"])
        else:
            _adam_foreach(params, exp_avgs, exp_avg_sqs, grads, adam_steps, weights, dtype,
                          lr=lr, beta1=beta1, beta2=beta2, eps=eps)

        if stats is not None:
            before = torch.stack(torch._foreach_norm(grads)).to(dtype)
            clipped = torch.stack(counts).sum() if counts else None
            stats.add(before, gn_scale * norm, clipped, sum(g.numel() for g in grads), reset)

    def _weighted_chunk(self, g: Tensor, weights: list[Tensor], counts: list[Tensor] | None,
                        dtype: torch.dtype) -> Tensor:
        """``g * (keep + clip * [|g| > threshold])`` for one chunk, in a scratch buffer of ``dtype``;
        ``weights = (threshold, clip, keep)`` are 0-dim tensors. Appends the clipped count if asked."""
        threshold, clip, keep = weights
        g = self._scratch.as_dtype("grad", g, dtype)
        w = self._scratch.get("weight", g)
        torch.abs(g, out=w)
        torch.gt(w, threshold, out=w)             # 1.0 where clipped, else 0.0
        if counts is not None:
            counts.append(w.sum())
        return w.mul_(clip).add_(keep).mul_(g)

    def _sumsq_chunked(self, grads: list[Tensor], weights: tuple, counts: list[Tensor] | None,
                       dtype: torch.dtype) -> Tensor:
        """Per tensor, the sum of squares of the weighted gradient, chunk by chunk (CPU path)."""
        sums = []
        for i, g in enumerate(grads):
            w_i = [w[i] for w in weights]
            parts = [torch.dot(u, u) for u in (self._weighted_chunk(c, w_i, counts, dtype) for c in chunks(g))]
            sums.append(parts[0] if len(parts) == 1 else torch.stack(parts).sum())
        return torch.stack(sums)


def _in_dtype(tensors: list[Tensor], dtype: torch.dtype) -> list[Tensor]:
    return tensors if tensors[0].dtype == dtype else [t.to(dtype) for t in tensors]


def _weighted_foreach(grads: list[Tensor], weights: tuple, counts: list[Tensor] | None) -> list[Tensor]:
    """Multi-tensor ``g * (keep + clip * [|g| > threshold])`` (new tensors); appends clipped counts if asked."""
    threshold, clip, keep = weights
    w = torch._foreach_abs(grads)
    torch._foreach_sub_(w, list(threshold))
    torch._foreach_sign_(w)
    torch._foreach_clamp_min_(w, 0.0)          # exactly 1.0 where |g| > threshold, else 0.0
    if counts is not None:
        counts.extend(torch._foreach_norm(w, 1))
    torch._foreach_mul_(w, list(clip))
    torch._foreach_add_(w, list(keep))
    torch._foreach_mul_(w, grads)
    return w


def _sumsq_foreach(grads: list[Tensor], weights: tuple, counts: list[Tensor] | None, dtype: torch.dtype) -> Tensor:
    """Per tensor, the sum of squares of the weighted gradient (multi-tensor path)."""
    return torch.stack(torch._foreach_norm(_weighted_foreach(_in_dtype(grads, dtype), weights, counts))).square()


def _adam_foreach(params, exp_avgs, exp_avg_sqs, grads, steps, weights, dtype, *, lr, beta1, beta2, eps) -> None:
    """Adam on the weighted gradient with multi-tensor ops, bias corrections folded into step size and eps."""
    u = _weighted_foreach(_in_dtype(grads, dtype), weights, None)
    bc1 = [1 - beta1 ** k for k in steps]
    bc2_sqrt = [math.sqrt(1 - beta2 ** k) for k in steps]
    torch._foreach_lerp_(exp_avgs, u, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, u, u, 1 - beta2)
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_add_(denom, [eps * b2 for b2 in bc2_sqrt])
    torch._foreach_addcdiv_(params, exp_avgs, denom, [-lr * b2 / b1 for b1, b2 in zip(bc1, bc2_sqrt)])
