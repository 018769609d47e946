"""`SPAM`: Spike-Aware Adam with Momentum Reset (SPEC §1.2) as a multi-tensor step."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .backends import AdamArgs, Backend
from .base import StatsAccumulator
from .foreach_utils import state_dtype
from .grouped import GroupedStepOptimizer, takes_hparams
from .schedules import spam_warmup_factor
from .transforms import spike_clip, spike_clip_active, spike_count
from .validation import validate

#: SPAM's hyper-parameters and their defaults (the paper's), written once: eps 1e-6 is added outside the sqrt,
#: threshold is theta (0 disables spike clipping), reset_interval is Delta T (0 disables resets), warmup is N.
DEFAULTS: dict[str, Any] = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, threshold=5000.0,
                                reset_interval=500, warmup=150)


class SPAM(GroupedStepOptimizer):
    """SPAM (Huang et al. 2025a, arXiv 2501.06842), the authors' rule without sparse masks — the ``spam`` recipe.

    At global step c (1, 2, ...), per tensor:

    * if ``c % reset_interval == 0``: Adam's moments are zeroed (Adam's step counter ``t`` is **not** reset);
    * spike-aware clipping (``threshold`` > 0, ``c >= 20`` and ``c % reset_interval >= 20``): entries with
      ``g^2 > threshold * v`` (v: Adam's previous second moment, not bias-corrected) become
      ``sign(g) * sqrt(threshold * v)``;
    * ``t += 1``, ``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g^2``,
      ``p -= lr * sqrt(1-b2^t)/(1-b1^t) * f * m/(sqrt(v) + eps)``, then ``p -= lr*wd*p`` if wd > 0;
    * ``f = 1 - w(j)`` is the cosine warm-up after a reset: ``w(j) = 0.99 (1+cos(pi j/(N+1)))/2`` for j < N, else
      0, with j the number of steps since the last reset (0 on the reset step, so f = 0.01 there) and f = 1
      before the first reset. (SPEC §1.2 states j as a counter started at N+1, incremented after each step and
      set to 0 after the step before a reset; since resets fall on multiples of ``reset_interval`` that counter
      always equals ``c % reset_interval`` once c >= reset_interval, which is what is computed here.)

    Hyper-parameters and defaults: `DEFAULTS`. State in fp32 (or the parameter's dtype if wider); the global
    step is in ``state_dict()``. ``step()`` leaves ``p.grad`` as it found it (the authors' code clips it in
    place). One pass over memory, the clipping inline in the Adam update, in the backend of
    `optimizers.backends` (C kernels on CPU, multi-tensor ops elsewhere).
    """

    @takes_hparams(DEFAULTS)
    def __init__(self, params, **hparams: Any) -> None:
        hp = validate(type(self).__name__, hparams, DEFAULTS)
        super().__init__(params, dict(hp, betas=tuple(hp["betas"])))
        self._counters = {"step": 0}

    @staticmethod
    def warmup_factor(step: int, reset_interval: int, warmup: int) -> float:
        """The factor ``f`` on the update at global step ``step`` (see the class docstring)."""
        if reset_interval == 0 or step < reset_interval:
            return 1.0
        return spam_warmup_factor(step % reset_interval, warmup)

    def _state_of(self, p: Tensor) -> dict:
        state = self.state[p]
        if not state:
            dtype = state_dtype(p)
            state.update(step=0,
                         exp_avg=torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format),
                         exp_avg_sq=torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format))
        return state

    def _update(self, backend: Backend, params: list[Tensor], grads: list[Tensor], group: dict,
                stats: StatsAccumulator | None) -> None:
        states = [self._state_of(p) for p in params]
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]
        c, interval = self._counters["step"], group["reset_interval"]
        reset = interval > 0 and c % interval == 0
        if reset:
            torch._foreach_zero_(exp_avgs + exp_avg_sqs)
        threshold = group["threshold"] if group["threshold"] > 0 and spike_clip_active(c, interval) else 0.0
        if stats is not None:
            self._add_stats(stats, grads, exp_avg_sqs, threshold, reset)
        for s in states:
            s["step"] += 1
        lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
        adam = AdamArgs(lr=lr * self.warmup_factor(c, interval, group["warmup"]), beta1=beta1, beta2=beta2,
                        eps=group["eps"], steps=[s["step"] for s in states], eps_corrected=False,
                        decay_after=1 - lr * wd if wd > 0 else 1.0)
        backend.adam(params, grads, exp_avgs, exp_avg_sqs, adam, spike_threshold=threshold)

    @staticmethod
    def _add_stats(stats: StatsAccumulator, grads: list[Tensor], exp_avg_sqs: list[Tensor], threshold: float,
                   reset: bool) -> None:
        """Norms before and after the spike clipping and the clipped count, from copies (off the hot path)."""
        before = torch.stack(torch._foreach_norm(grads))
        if threshold > 0:
            work = [g.to(v.dtype) for g, v in zip(grads, exp_avg_sqs)]
            count = torch.stack([spike_count(g, v, threshold) for g, v in zip(work, exp_avg_sqs)]).sum()
            after = torch.stack([torch.linalg.vector_norm(spike_clip(g, v, threshold))
                                 for g, v in zip(work, exp_avg_sqs)])
        else:
            count, after = None, before
        stats.add(before, after, count, sum(g.numel() for g in grads), reset)
