"""The shared step-based trainer used by every supervised domain (LLaMA, OLMoE, PatchTST, quadratic).

One loop a reader can hold in their head::

    for step in range(start, steps):
        set the LR (linear warm-up, then cosine to a floor)
        forward + backward of loss_fn(model, batch_at(step)) (in micro-batches if asked); optimizer.step()
        log telemetry; stop with Diverged if the loss blew up
        evaluate / checkpoint when due

The domain supplies the model, a deterministic ``batch_at(step)``, a pure ``loss_fn(model, batch)`` (the mean
loss, or ``(loss, extras)`` with extras logged as telemetry) and ``evaluate(model, step)`` (metrics, or
``(metrics, series)``: the metrics are checked and returned, both are logged at ``step``); the optimizer comes
from ``optimizers.build`` by recipe name, never from the domain. The run length is ``loop.steps``, which domains
take from their config's budget field. Under ``torch.distributed`` (``torchrun``) the model is wrapped in
DistributedDataParallel, every rank feeds its own slice of the global batch through ``batch_at``, and only rank 0
logs and checkpoints. With ``ctx.compile`` the loss (forward included) runs through ``torch.compile``: the
same arithmetic fused by inductor, equal to the eager loss to float rounding (the order of some sums differs), so
runs drift apart like two machines' would; the run's info says ``compiled`` and the first step's seconds
(``compile_seconds``: inductor caches kernels on disk, so later processes compile faster).
"""

from __future__ import annotations

import math
import statistics
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import nn

import optimizers
from domains.base import Diverged, RunContext
from domains.checkpoints import Cadence
from domains.training.accumulation import forward_backward
from domains.training.checkpoint import TrainerCheckpoint
from domains.training.distributed import mean_across_ranks, rank_and_world, wrap_ddp

TELEMETRY_KEYS = ("grad_norm_before", "grad_norm_after", "clip_fraction", "reset")
RECENT_LOSSES = 10  # the window of the divergence rule and of the reported train_loss

LossFn = Callable[[nn.Module, Any], "torch.Tensor | tuple[torch.Tensor, dict]"]
Evaluate = Callable[[nn.Module, int], "Mapping[str, float] | tuple[Mapping[str, float], Mapping[str, float]]"]


@dataclass
class TrainLoop:
    """How a supervised run is driven (the schedule and the cadences)."""

    steps: int
    warmup: float = 0.1  # fraction of steps if < 1, else a step count; linear warm-up from 0
    min_lr_ratio: float = 0.1  # cosine decay ends at this fraction of the peak LR
    eval_every: int = 0  # 0: evaluate only at the end
    divergence_factor: float = 10.0  # median of recent losses > factor x first loss -> Diverged
    checkpoint_every: int = 0  # 0: no checkpoints (they also need ctx.workdir)
    log_every: int = 1
    micro_batch_size: int = 0  # gradient accumulation over chunks of this many rows (0: the whole batch at once)
    autocast_dtype: torch.dtype | None = None


@dataclass
class LoopState:
    """What the loop carries from step to step, and through a checkpoint."""

    first_loss: float | None = None
    recent: list[float] = field(default_factory=list)  # the last RECENT_LOSSES step losses
    elapsed: float = 0.0  # training seconds spent before this process started (a resumed run's past)

    def add_loss(self, value: float) -> None:
        """Note a step's loss."""
        if self.first_loss is None:
            self.first_loss = value
        self.recent = (self.recent + [value])[-RECENT_LOSSES:]

    def as_dict(self, elapsed: float) -> dict:
        """The state as plain containers for a checkpoint, with ``elapsed`` training seconds so far."""
        return {"first_loss": self.first_loss, "recent": list(self.recent), "elapsed": elapsed}


def lr_factor(step: int, steps: int, warmup: float, min_lr_ratio: float) -> float:
    """Multiplier of the peak LR at ``step`` (0-based): linear warm-up, then cosine to ``min_lr_ratio``."""
    warmup_steps = int(round(warmup * steps)) if warmup < 1 else int(warmup)
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def train(model: nn.Module, batch_at: Callable[[int], Any], loss_fn: LossFn, evaluate: Evaluate, loop: TrainLoop,
          ctx: RunContext) -> dict[str, float]:
    """Train ``model`` with the recipe in ``ctx`` and return the final evaluation plus loop statistics.

    Returns the metrics of ``evaluate(model, loop.steps)`` at the end together with ``train_loss`` (mean of the
    last 10 step losses), ``steps`` and ``seconds`` (training wall time, evaluation excluded). Raises
    :class:`Diverged` when the loss or an evaluation value is non-finite, or when the median of the last 10
    losses exceeds ``loop.divergence_factor`` times the first loss.
    """
    rank, world = rank_and_world()
    is_main = rank == 0
    model.to(ctx.device)
    model.train()
    net = wrap_ddp(model, ctx.device) if world > 1 else model
    optimizer = optimizers.build(ctx.recipe, model.named_parameters(), **ctx.hparams)
    step_loss = torch.compile(loss_fn) if ctx.compile else loss_fn
    schedule = _LRSchedule(optimizer, loop)
    autocast = _autocast(ctx.device, loop.autocast_dtype)
    checkpoint = TrainerCheckpoint(ctx.workdir, model, optimizer, ctx.device) \
        if loop.checkpoint_every and ctx.workdir is not None else None
    start, state = _resume(checkpoint, ctx)
    cadence = Cadence(loop.checkpoint_every, loop.steps, last=start)
    stopwatch = _Stopwatch(state.elapsed)

    with _progress_bar(ctx.progress and is_main, loop.steps, start, ctx.progress_label or ctx.recipe) as progress:
        for step in range(start, loop.steps):
            lr = schedule.apply(step)
            wants_stats = step % loop.log_every == 0
            optimizer.collect_stats = wants_stats
            optimizer.zero_grad(set_to_none=True)
            started = time.perf_counter()
            loss, extras = forward_backward(net, step_loss, batch_at(step), loop.micro_batch_size, autocast)
            if ctx.compile and step == start:  # the first step compiles the forward and the backward
                ctx.logger.log_info(compiled=True, compile_seconds=round(time.perf_counter() - started, 2))
            optimizer.step()

            loss_value = mean_across_ranks(loss, world)
            state.add_loss(loss_value)
            _check_divergence(step, loss_value, state, loop.divergence_factor)
            if wants_stats and is_main:
                ctx.logger.log_step(step, _step_record(loss_value, lr, optimizer, extras))
            _advance(progress, step, loss_value, shown=ctx.progress and is_main)

            done = step + 1
            if loop.eval_every and done % loop.eval_every == 0 and done < loop.steps:
                with stopwatch.paused():
                    _evaluate(model, evaluate, autocast, done, ctx, is_main)
            if checkpoint is not None and is_main and cadence.due(done):
                run_state = {**state.as_dict(elapsed=stopwatch.read()), "logger": ctx.logger.snapshot()}
                with stopwatch.paused():
                    checkpoint.save(done, run_state)
                cadence.saved(done)
    seconds = stopwatch.read()

    final = _evaluate(model, evaluate, autocast, loop.steps, ctx, is_main)
    if checkpoint is not None and is_main:
        checkpoint.remove()
    train_loss = statistics.fmean(state.recent) if state.recent else float("nan")
    return {**final, "train_loss": train_loss, "steps": float(loop.steps), "seconds": seconds}


class _LRSchedule:
    """Sets every param group's LR to its peak (the recipe's ``lr``) times :func:`lr_factor`."""

    def __init__(self, optimizer: torch.optim.Optimizer, loop: TrainLoop):
        self.optimizer, self.loop = optimizer, loop
        self.peaks = [group["lr"] for group in optimizer.param_groups]

    def apply(self, step: int) -> float:
        """Set the LRs of ``step``; return the first group's (the one telemetry reports)."""
        factor = lr_factor(step, self.loop.steps, self.loop.warmup, self.loop.min_lr_ratio)
        for group, peak in zip(self.optimizer.param_groups, self.peaks):
            group["lr"] = peak * factor
        return self.peaks[0] * factor


def _advance(progress, step: int, loss: float, shown: bool) -> None:
    progress.update(1)
    if shown and step % 10 == 0:
        progress.set_postfix(loss=f"{loss:.4g}")


def _resume(checkpoint: TrainerCheckpoint | None, ctx: RunContext) -> tuple[int, LoopState]:
    """The step to start from and the loop state: from the checkpoint when there is one, else fresh."""
    restored = checkpoint.restore() if checkpoint is not None else None
    if restored is None:
        return 0, LoopState()
    step, run_state = restored
    ctx.logger.restore(run_state["logger"])
    return step, LoopState(run_state["first_loss"], list(run_state["recent"]), run_state["elapsed"])


def _step_record(loss: float, lr: float, optimizer, extras: Mapping) -> dict[str, float]:
    """One telemetry record: loss, LR, the optimizer's stats (when it collected them) and the loss's extras."""
    record = {"loss": loss, "lr": lr}
    stats = getattr(optimizer, "last_stats", None) or {}
    record.update({key: float(stats[key]) for key in TELEMETRY_KEYS if key in stats})
    record.update({key: float(value) for key, value in extras.items()})
    return record


def _check_divergence(step: int, loss: float, state: LoopState, factor: float) -> None:
    if not math.isfinite(loss):
        raise Diverged(step, f"non-finite loss ({loss})")
    # The median ignores a lone spike: divergence means the loss stays up.
    recent, first = state.recent, state.first_loss
    if factor and len(recent) >= 3 and statistics.median(recent) > factor * abs(first):
        raise Diverged(step, f"loss {statistics.median(recent):.4g} > {factor:g} x initial {first:.4g}")


def _evaluate(model, evaluate: Evaluate, autocast, step: int, ctx: RunContext, is_main: bool) -> dict[str, float]:
    """Evaluate in eval mode without gradients; log metrics and series at ``step``; return the metrics."""
    model.eval()
    with torch.no_grad(), autocast:
        output = evaluate(model, step)
        metrics, series = output if isinstance(output, tuple) else (output, {})
        values = {key: float(value) for key, value in metrics.items()}
    model.train()
    bad = [key for key, value in values.items() if not math.isfinite(value)]
    if bad:
        raise Diverged(step, f"non-finite evaluation {', '.join(bad)}")
    if is_main:
        ctx.logger.log_eval(step, {**values, **{key: float(value) for key, value in series.items()}})
    return values


class _Stopwatch:
    """Training time: ``before`` plus the wall time since creation, less the time spent in :meth:`paused` blocks."""

    def __init__(self, before: float = 0.0):
        self._elapsed, self._since = before, time.perf_counter()

    def read(self) -> float:
        """Seconds counted so far (call it outside a :meth:`paused` block)."""
        return self._elapsed + time.perf_counter() - self._since

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stop counting while the block runs."""
        self._elapsed += time.perf_counter() - self._since
        try:
            yield
        finally:
            self._since = time.perf_counter()


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None or dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextmanager
def _progress_bar(enabled: bool, total: int, initial: int, label: str):
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=initial, disable=not enabled, leave=False, desc=label, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()
