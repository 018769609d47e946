"""`StableSPAM`: the mended Stable-SPAM (SPEC §1.1) as one fused multi-tensor step."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .backends import AdaClipScalars, AdamArgs, Backend
from .base import StatsAccumulator
from .foreach_utils import bias_correction, state_dtype
from .grouped import GroupedStepOptimizer, takes_hparams
from .schedules import momentum_scale
from .validation import validate

#: Stable-SPAM's hyper-parameters and their defaults (the paper's), written once: `StableSPAM`,
#: `optimizers.StableSPAMRef`, the registry's recipes and the README read them from here. gamma1/gamma2 are the
#: paper's 4-bit values (0.85 / 0.99999 for BF16); reset_interval 0 disables momentum reset; total_T None
#: disables the cosine decay of beta1 and gamma1 (eta_min is its floor).
DEFAULTS: dict[str, Any] = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, gamma1=0.7, gamma2=0.9,
                                gamma3=0.999, reset_interval=1000, total_T=None, eta_min=0.5)


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
    in ``state_dict()`` so a resumed run continues bit for bit. ``step()`` leaves ``p.grad`` as it found it.

    Hyper-parameters and defaults: `DEFAULTS` (lr, betas, eps, weight_decay, gamma1, gamma2, gamma3,
    reset_interval, total_T, eta_min). They live in the param groups and may differ per group.

    Speed: three passes over the gradient and one Adam pass, no host synchronisation. Per partition of tensors
    (see `optimizers.grouped`) the step gathers its lists, takes ``max|g|`` (pass 1), computes each tensor's
    AdaClip threshold on stacked 0-dim tensors, takes the norm of the clipped gradient (pass 2, in units of
    ``max|g|`` so it neither overflows nor underflows), computes each tensor's AdaGN scale, and runs Adam on
    the clipped, scaled gradient, the clip and scale applied inline (pass 3). The passes run in one backend
    (`optimizers.backends`): C kernels on CPU, multi-tensor ops elsewhere.
    """

    @takes_hparams(DEFAULTS)
    def __init__(self, params, **hparams: Any) -> None:
        hp = validate(type(self).__name__, hparams, DEFAULTS)
        super().__init__(params, dict(hp, betas=tuple(hp["betas"])))
        self._counters = {"step": 0}

    def _state_of(self, p: Tensor) -> dict:
        state = self.state[p]
        if not state:
            dtype = state_dtype(p)
            state.update({
                "step": 0,                                  # Adam's counter (restarted by resets)
                "exp_avg": torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format),
                "adaclip.step": 0,                          # AdaClip: counter, EMA of max|g|
                "adaclip.ema": torch.zeros((), dtype=dtype, device=p.device),
                "adagn.step": 0,                            # AdaGN: counter, EMAs of ||g|| and ||g||^2
                "adagn.m": torch.zeros((), dtype=dtype, device=p.device),
                "adagn.v": torch.zeros((), dtype=dtype, device=p.device),
            })
        return state

    def _update(self, backend: Backend, params: list[Tensor], grads: list[Tensor], group: dict,
                stats: StatsAccumulator | None) -> None:
        before = torch.stack(torch._foreach_norm(grads)) if stats is not None else None
        states = [self._state_of(p) for p in params]
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]
        t, interval = self._counters["step"], group["reset_interval"]
        scale = momentum_scale(t, group["total_T"], group["eta_min"], hold=True)
        reset = interval > 0 and t % interval == 0
        if reset:
            torch._foreach_zero_(exp_avgs + exp_avg_sqs)
        for s in states:
            s["step"] = 1 if reset else s["step"] + 1
            s["adaclip.step"] += 1
            s["adagn.step"] += 1

        gmax = backend.abs_max(grads, exp_avgs[0].dtype)
        clip = _adaclip(gmax, states, group["gamma3"])
        norm, counts = backend.clip_norm(grads, clip, count=stats is not None)
        norm = gmax * norm
        gn_scale = _adagn(norm, states, group["gamma1"] * scale, group["gamma2"], group["eps"])
        clip.factor = gn_scale * gmax            # Adam consumes gn_scale * clip(g) = factor * x
        lr, (beta1, beta2) = group["lr"], group["betas"]
        adam = AdamArgs(lr=lr, beta1=beta1 * scale, beta2=beta2, eps=group["eps"], steps=[s["step"] for s in states],
                        decay_before=1 - lr * group["weight_decay"])
        backend.adam(params, grads, exp_avgs, exp_avg_sqs, adam, adaclip=clip)

        if stats is not None and before is not None:
            clipped = counts.sum() if counts is not None else None
            stats.add(before, gn_scale * norm, clipped, sum(g.numel() for g in grads), reset)


def _adaclip(gmax: Tensor, states: list[dict], gamma3: float) -> AdaClipScalars:
    """AdaClip's per-tensor scalars from ``max|g|`` (updating each state's EMA): entries above ``T_hat`` are
    scaled to ``g / max|g| * T_hat``; both kinds are divided by ``max|g|`` for the norm pass."""
    ema = torch.stack([s["adaclip.ema"] for s in states]).mul_(gamma3).add_(gmax, alpha=1 - gamma3)
    threshold = ema / bias_correction(gamma3, [s["adaclip.step"] for s in states], ema)
    w_keep = torch.where(gmax > 0, gmax.reciprocal(), 0.0)      # gmax = 0: the gradient is 0, nothing to clip
    torch._foreach_copy_([s["adaclip.ema"] for s in states], list(ema.unbind()))
    return AdaClipScalars(threshold=threshold, w_clip=threshold * w_keep * w_keep, w_keep=w_keep)


def _adagn(norm: Tensor, states: list[dict], gamma1: float, gamma2: float, eps: float) -> Tensor:
    """AdaGN's per-tensor scale ``m_hat / (sqrt(v_hat) + eps) / ||g||`` (1 where ``||g|| = 0``), updating each
    state's EMAs of the norm and its square."""
    steps = [s["adagn.step"] for s in states]
    m = torch.stack([s["adagn.m"] for s in states]).mul_(gamma1).add_(norm, alpha=1 - gamma1)
    v = torch.stack([s["adagn.v"] for s in states]).mul_(gamma2).add_(norm * norm, alpha=1 - gamma2)
    target = (m / bias_correction(gamma1, steps, m)) / ((v / bias_correction(gamma2, steps, v)).sqrt() + eps)
    torch._foreach_copy_([s["adagn.m"] for s in states], list(m.unbind()))
    torch._foreach_copy_([s["adagn.v"] for s in states], list(v.unbind()))
    return torch.where(norm > 0, target / norm, 1.0)
