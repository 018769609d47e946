"""Composable gradient transforms: one small idea each, applied in order by `optimizers.chain.Chain` before a
base ``torch.optim.Optimizer`` steps (the idea of optax's ``chain``).

A transform rewrites the gradients it is handed **in place** (the chain hands it its own working copies, never
the caller's ``p.grad``), may set a param-group value for the base's step only (``ctx.override``), may keep
per-parameter state in ``ctx.state`` under its own prefixed keys (the chain saves it in ``state_dict()``), and
may read or reset the base optimizer's state ``ctx.base.state`` (MoRet, SpikeClip). Everything follows
SPEC §1.1-§1.2 with the *mended* semantics: state in fp32 (or wider), per-transform bias-correction counters
untouched by resets.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, MutableMapping, Sequence

import torch
from torch import Tensor

from .foreach_utils import abs_max, state_dtype
from .schedules import momentum_scale

#: SpikeClip stays off for this many steps at the start of training and after each momentum reset (SPAM).
SPIKE_CLIP_SETTLE_STEPS = 20


@dataclass
class StepContext:
    """What a transform sees besides the gradients during one optimizer step."""

    step: int                                   # global step, 1 on the first call
    state: MutableMapping[Tensor, dict]         # the transforms' per-parameter state (not the base's)
    base: torch.optim.Optimizer
    scale: float = 1.0                          # momentum factor set by CosineMomentumDecay
    stats: dict | None = None                   # filled only when the optimizer collects stats
    overrides: list[tuple[dict, str, Any]] = field(default_factory=list)

    def override(self, group: dict, key: str, value: Any) -> None:
        """Give ``group[key]`` the value ``value`` for this step's base update only; the chain restores it after."""
        self.overrides.append((group, key, value))

    def report_clip_fraction(self, fraction: Tensor) -> None:
        """Record the fraction of entries a clipping transform changed (the largest over the chain)."""
        if self.stats is not None:
            previous = self.stats.get("clip_fraction")
            self.stats["clip_fraction"] = fraction if previous is None else torch.maximum(previous, fraction)

    def report_reset(self) -> None:
        if self.stats is not None:
            self.stats["reset"] = True


class GradientTransform(abc.ABC):
    """One gradient transformation. Subclasses implement `apply`."""

    @abc.abstractmethod
    def apply(self, params: list[Tensor], grads: list[Tensor], ctx: StepContext) -> None:
        """Rewrite ``grads`` (the ``.grad`` of ``params``, parameters without a gradient left out) in place."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _scalar_state(state: dict, key: str, param: Tensor) -> Tensor:
    if key not in state:
        state[key] = torch.zeros((), dtype=state_dtype(param), device=param.device)
    return state[key]


def _count_step(state: dict, key: str) -> int:
    state[key] = state.get(key, 0) + 1
    return state[key]


def _fraction(counts: list[Tensor], grads: Sequence[Tensor]) -> Tensor:
    total = sum(g.numel() for g in grads)
    return torch.stack([c.float() for c in counts]).sum() / max(total, 1)


class AdaClip(GradientTransform):
    """Adaptive spike clipping (Stable-SPAM, SPEC §1.1 step 2), per tensor.

    ``T = gamma3*T + (1-gamma3)*max|g|``, ``T_hat = T/(1-gamma3^k)`` (k: this transform's own counter);
    entries with ``|g| > T_hat`` become ``g / max|g| * T_hat``. State: ``adaclip.step``, ``adaclip.ema``.
    """

    def __init__(self, gamma3: float = 0.999):
        self.gamma3 = gamma3

    def apply(self, params, grads, ctx):
        counts = []
        for p, g, gmax in zip(params, grads, abs_max(grads)):
            state = ctx.state[p]
            k = _count_step(state, "adaclip.step")
            ema = _scalar_state(state, "adaclip.ema", p)
            gmax = gmax.to(ema.dtype)
            ema.mul_(self.gamma3).add_(gmax, alpha=1 - self.gamma3)
            threshold = ema / (1 - self.gamma3 ** k)
            spikes = g.abs() > threshold
            g.copy_(torch.where(spikes, g * (threshold / gmax), g))   # gmax = 0 -> no spikes, no NaN used
            if ctx.stats is not None:
                counts.append(spikes.sum())
        if ctx.stats is not None:
            ctx.report_clip_fraction(_fraction(counts, grads))


class AdaGN(GradientTransform):
    """Adaptive gradient-norm scaling (Stable-SPAM, SPEC §1.1 step 3), per tensor.

    ``n = ||g||``, ``m = g1*m + (1-g1)*n``, ``v = gamma2*v + (1-gamma2)*n^2`` with ``g1 = gamma1 * ctx.scale``;
    ``g <- g / n * m_hat / (sqrt(v_hat) + eps)`` with bias corrections from this transform's own counter;
    g unchanged when n = 0. State: ``adagn.step``, ``adagn.m``, ``adagn.v``.
    """

    def __init__(self, gamma1: float = 0.7, gamma2: float = 0.9, eps: float = 1e-8):
        self.gamma1, self.gamma2, self.eps = gamma1, gamma2, eps

    def apply(self, params, grads, ctx):
        gamma1 = self.gamma1 * ctx.scale
        for p, g, norm in zip(params, grads, _norms(grads)):
            state = ctx.state[p]
            k = _count_step(state, "adagn.step")
            m, v = _scalar_state(state, "adagn.m", p), _scalar_state(state, "adagn.v", p)
            norm = norm.to(m.dtype)
            m.mul_(gamma1).add_(norm, alpha=1 - gamma1)
            v.mul_(self.gamma2).add_(norm * norm, alpha=1 - self.gamma2)
            m_hat = m / (1 - gamma1 ** k)
            v_hat = v / (1 - self.gamma2 ** k)
            target = m_hat / (v_hat.sqrt() + self.eps)
            g.mul_(torch.where(norm > 0, target / norm, 1.0))


def _norms(grads: Sequence[Tensor]) -> list[Tensor]:
    """L2 norm of each tensor, computed as ``max|g| * ||g / max|g|||`` so huge or tiny gradients neither
    overflow nor underflow the sum of squares."""
    maxes = abs_max(grads)
    safe = [torch.where(m > 0, m, 1.0) for m in maxes]
    return [m * n for m, n in zip(maxes, torch._foreach_norm(torch._foreach_div(list(grads), safe)))]


def spike_clip_active(step: int, reset_interval: int) -> bool:
    """SPAM's rule: clip from global step 20 on, except in the first 20 steps after each momentum reset
    (``step % reset_interval >= 20``; reset_interval 0 means no resets)."""
    settle = SPIKE_CLIP_SETTLE_STEPS
    return step >= settle and (reset_interval == 0 or step % reset_interval >= settle)


def spike_clip(grad: Tensor, exp_avg_sq: Tensor, threshold: float, out: Tensor | None = None,
               bounds: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """SPAM's spike-aware clipping of one tensor: entries with ``g^2 > threshold * v`` (v: Adam's previous,
    not bias-corrected second moment) become ``sign(g) * sqrt(threshold * v)``.

    Computed as ``clamp(g, -sqrt(threshold*v), sqrt(threshold*v))``: the same rule, since
    ``g^2 > threshold*v`` iff ``|g| > sqrt(threshold*v)`` (up to rounding at the boundary itself). ``out`` (may
    be ``grad``: in place) and ``bounds`` (two tensors like ``grad``) are optional buffers.
    """
    upper, lower = bounds if bounds is not None else (None, None)
    upper = torch.mul(exp_avg_sq, threshold, out=upper).sqrt_()
    return torch.clamp(grad, min=torch.neg(upper, out=lower), max=upper, out=out)


def spike_count(grad: Tensor, exp_avg_sq: Tensor, threshold: float) -> Tensor:
    """Number of entries `spike_clip` changes (``g^2 > threshold * v``), for stats."""
    return (grad * grad > exp_avg_sq * threshold).sum()


class SpikeClip(GradientTransform):
    """SPAM's spike-aware clipping (SPEC §1.2) against the base optimizer's ``exp_avg_sq`` (Adam's ``v``).

    Active per `spike_clip_active` (needs the recipe's ``reset_interval``); ``threshold`` 0 disables it.
    """

    def __init__(self, threshold: float = 5000.0, reset_interval: int = 500):
        self.threshold, self.reset_interval = threshold, reset_interval

    def apply(self, params, grads, ctx):
        if self.threshold <= 0 or not spike_clip_active(ctx.step, self.reset_interval):
            if ctx.stats is not None:
                ctx.report_clip_fraction(torch.zeros((), device=grads[0].device))
            return
        counts = []
        for p, g in zip(params, grads):
            v = ctx.base.state[p].get("exp_avg_sq")
            if v is None:
                continue
            if ctx.stats is not None:
                counts.append(spike_count(g, v, self.threshold))
            spike_clip(g, v, self.threshold, out=g)
        if ctx.stats is not None:
            ctx.report_clip_fraction(_fraction(counts or [torch.zeros(())], grads))


class GlobalNormClip(GradientTransform):
    """Global gradient-norm clipping with ``torch.nn.utils.clip_grad_norm_`` (the paper's Adam+GradClip)."""

    def __init__(self, max_norm: float = 1.0):
        self.max_norm = max_norm

    def apply(self, params, grads, ctx):
        total = torch.nn.utils.clip_grad_norm_(params, self.max_norm)
        if ctx.stats is not None:
            # clip_grad_norm_ scales by max_norm / (total + 1e-6) when that is below 1
            ctx.report_clip_fraction((self.max_norm / (total + 1e-6) < 1).float())


class MomentumReset(GradientTransform):
    """MoRet (SPEC §1.1 step 4): every ``reset_interval`` global steps, zero the base optimizer's moments in
    place and restart its step counter, so this step is a normal first step of the base (mended semantics).

    ``moment_keys``/``counter_key`` name the base's state entries (torch Adam/AdamW by default).
    """

    def __init__(self, reset_interval: int = 1000, moment_keys: Sequence[str] = ("exp_avg", "exp_avg_sq"),
                 counter_key: str = "step"):
        self.reset_interval, self.moment_keys, self.counter_key = reset_interval, tuple(moment_keys), counter_key

    def apply(self, params, grads, ctx):
        if self.reset_interval == 0 or ctx.step % self.reset_interval != 0:
            return
        for p in params:
            state = ctx.base.state[p]
            for key in self.moment_keys:
                if key in state:
                    state[key].zero_()
            counter = state.get(self.counter_key)
            if isinstance(counter, Tensor):
                counter.zero_()
            elif counter is not None:
                state[self.counter_key] = 0
        ctx.report_reset()


class CosineMomentumDecay(GradientTransform):
    """Stable-SPAM's optional cosine decay of the momentum factors (SPEC §1.1 step 6, mended: held at
    ``eta_min`` after ``total_T + 1``): sets ``ctx.scale`` for AdaGN's gamma1 and scales the base optimizer's
    ``betas[0]`` for this step's update (its Adam bias correction then uses the decayed beta1, as in the
    paper's code). The param groups keep the betas the user set.

    Must come first in a chain. Leaves gradients alone.
    """

    def __init__(self, total_T: int, eta_min: float = 0.5):
        self.total_T, self.eta_min = total_T, eta_min

    def apply(self, params, grads, ctx):
        ctx.scale = momentum_scale(ctx.step, self.total_T, self.eta_min, hold=True)
        for group in ctx.base.param_groups:
            beta1, beta2 = group["betas"]
            ctx.override(group, "betas", (beta1 * ctx.scale, beta2))
