"""`SPAM`: Spike-Aware Adam with Momentum Reset (SPEC §1.2) as a multi-tensor step."""
from __future__ import annotations

import torch
from torch import Tensor

from .base import StatsAccumulator
from .chunked import Scratch, adam_chunks_
from .foreach_utils import state_dtype
from .grouped import GroupedStepOptimizer
from .schedules import spam_warmup_factor
from .transforms import spike_clip, spike_clip_active, spike_count
from .validation import validate

DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, threshold=5000.0, reset_interval=500,
                warmup=150)


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

    Defaults (the paper's): lr 1e-3, betas (0.9, 0.999), eps 1e-6 (outside the sqrt), weight_decay 0,
    threshold (theta) 5000, reset_interval (Delta T) 500 (0 disables resets), warmup (N) 150.
    State in fp32 (or the parameter's dtype if wider); the global step is in ``state_dict()``. As in the authors'
    code, the clipping rewrites ``p.grad``: afterwards it holds the gradient the Adam update consumed. On CPU, for
    large fp32 tensors, the step runs chunk by chunk, clipping in cache, then PyTorch's fused Adam kernel
    (`optimizers.chunked`); elsewhere, for small or bf16/fp16/fp64 tensors and with ``cpu_fast_path = False``,
    with ``torch._foreach_*`` multi-tensor ops.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0, threshold: float = 5000.0, reset_interval: int = 500, warmup: int = 150):
        given = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, threshold=threshold,
                     reset_interval=reset_interval, warmup=warmup)
        super().__init__(params, validate(type(self).__name__, given, DEFAULTS))
        self._counters = {"step": 0}
        self._scratch = Scratch()

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

    def _update(self, params: list[Tensor], group: dict, stats: StatsAccumulator | None, fast: bool) -> None:
        """The step for tensors of one group sharing a device and a state dtype (and the path to take)."""
        grads = [p.grad for p in params]
        if any(g.is_sparse for g in grads):
            raise RuntimeError("SPAM does not support sparse gradients")
        states = [self._state_of(p) for p in params]
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        c, interval, threshold = self._counters["step"], group["reset_interval"], group["threshold"]
        dtype = exp_avgs[0].dtype
        # the gradients this step rewrites: p.grad itself, or an fp32 copy of a narrower one
        work = grads if grads[0].dtype == dtype else [g.to(dtype) for g in grads]

        reset = interval > 0 and c % interval == 0
        if reset:
            torch._foreach_zero_(exp_avgs + exp_avg_sqs)
        clip = threshold > 0 and spike_clip_active(c, interval)
        if stats is not None:
            before = torch.stack(torch._foreach_norm(work))
            counts = [spike_count(g, v, threshold) for g, v in zip(work, exp_avg_sqs)] if clip else None
        for s in states:
            s["step"] += 1
        steps = [s["step"] for s in states]
        factor = self.warmup_factor(c, interval, group["warmup"])
        bc2_sqrt = [(1 - beta2 ** t) ** 0.5 for t in steps]

        if fast:
            def clip_chunk(i: int, g: Tensor, v: Tensor) -> None:
                bounds = (self._scratch.get("upper", g), self._scratch.get("lower", g))
                spike_clip(g, v, threshold, out=g, bounds=bounds)
            # torch's Adam divides sqrt(v) by sqrt(1-b2^t) before adding eps; SPAM adds eps to sqrt(v) itself.
            adam_chunks_(params, exp_avgs, exp_avg_sqs, work, steps, lr=[lr * factor] * len(params), beta1=beta1,
                         beta2=beta2, eps=[eps / b for b in bc2_sqrt], prepare=clip_chunk if clip else None)
        else:
            if clip:
                for g, v in zip(work, exp_avg_sqs):
                    spike_clip(g, v, threshold, out=g)
            torch._foreach_lerp_(exp_avgs, work, 1 - beta1)
            torch._foreach_mul_(exp_avg_sqs, beta2)
            torch._foreach_addcmul_(exp_avg_sqs, work, work, 1 - beta2)
            denom = torch._foreach_sqrt(exp_avg_sqs)
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(params, exp_avgs, denom,
                                    [-lr * factor * b / (1 - beta1 ** t) for b, t in zip(bc2_sqrt, steps)])
        if work is not grads:
            torch._foreach_copy_(grads, work)
        if group["weight_decay"] > 0:
            torch._foreach_mul_(params, 1 - lr * group["weight_decay"])

        if stats is not None:
            count = torch.stack(counts).sum() if counts else None
            stats.add(before, torch.stack(torch._foreach_norm(work)), count, sum(g.numel() for g in grads), reset)
