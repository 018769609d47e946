"""The shared step-based trainer used by every supervised domain (LLaMA, OLMoE, PatchTST, quadratic).

One loop a reader can hold in their head::

    for step in range(start, steps):
        set the LR (linear warm-up, then cosine to a floor)
        loss = loss_fn(model, batch_at(step)); backward; optimizer.step()
        log telemetry; stop with Diverged if the loss blew up
        evaluate / checkpoint when due

The domain supplies the model, a deterministic ``batch_at(step)``, the loss and the evaluation; the
optimizer comes from ``optimizers.build`` by recipe name, never from the domain. Under
``torch.distributed`` (``torchrun``) the model is wrapped in DistributedDataParallel, every rank feeds
its own slice of the global batch through ``batch_at``, and only rank 0 logs and checkpoints.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

import optimizers
from domains.base import Diverged, RunContext

TELEMETRY_KEYS = ("grad_norm_before", "grad_norm_after", "clip_fraction", "reset")


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
    autocast_dtype: torch.dtype | None = None


def lr_factor(step: int, steps: int, warmup: float, min_lr_ratio: float) -> float:
    """Multiplier of the peak LR at ``step`` (0-based): linear warm-up, then cosine to ``min_lr_ratio``."""
    warmup_steps = int(round(warmup * steps)) if warmup < 1 else int(warmup)
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def train(
    model: nn.Module,
    batch_at: Callable[[int], Any],
    loss_fn: Callable[[nn.Module, Any], torch.Tensor | tuple[torch.Tensor, dict]],
    evaluate: Callable[[nn.Module], dict[str, float]],
    loop: TrainLoop,
    ctx: RunContext,
) -> dict[str, float]:
    """Train ``model`` with the recipe in ``ctx`` and return the final evaluation plus loop statistics.

    Returns ``evaluate(model)`` at the end together with ``train_loss`` (mean of the last 10 step
    losses), ``steps`` and ``seconds`` (training wall time, evaluation excluded). Raises
    :class:`Diverged` when the loss or an evaluation value is non-finite, or when the median of the
    last 10 losses exceeds ``loop.divergence_factor`` times the first loss.
    """
    steps = ctx.budget or loop.steps
    rank, world = rank_and_world()
    is_main = rank == 0
    model.to(ctx.device)
    model.train()
    net = _wrap_ddp(model, ctx.device) if world > 1 else model
    optimizer = optimizers.build(ctx.recipe, model.named_parameters(), **ctx.hparams)
    peak_lrs = [group["lr"] for group in optimizer.param_groups]
    autocast = _autocast(ctx.device, loop.autocast_dtype)

    # Every rank resumes from the same file (shared filesystem); only rank 0 writes it.
    checkpoint = _checkpoint_path(ctx) if loop.checkpoint_every else None
    start, first_loss, recent, elapsed = 0, None, [], 0.0
    if checkpoint is not None and checkpoint.exists():
        start, first_loss, recent, elapsed = _resume(checkpoint, model, optimizer, ctx)

    progress = _progress_bar(ctx.progress and is_main, steps, start, ctx.recipe)
    clock = time.perf_counter()
    for step in range(start, steps):
        factor = lr_factor(step, steps, loop.warmup, loop.min_lr_ratio)
        for group, peak in zip(optimizer.param_groups, peak_lrs):
            group["lr"] = peak * factor
        wants_stats = step % loop.log_every == 0
        optimizer.collect_stats = wants_stats

        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss, extras = _split(loss_fn(net, batch_at(step)))
        loss.backward()
        optimizer.step()

        loss_value = _mean_across_ranks(loss.detach(), world)
        if first_loss is None:
            first_loss = loss_value
        recent = (recent + [loss_value])[-10:]
        _check_divergence(step, loss_value, recent, first_loss, loop.divergence_factor)
        if wants_stats and is_main:
            record = {"loss": loss_value, "lr": peak_lrs[0] * factor}
            record.update(_stats_as_floats(optimizer))
            record.update({k: float(v) for k, v in extras.items()})
            ctx.logger.log_step(step, record)
        progress.update(1)
        if ctx.progress and is_main and step % 10 == 0:
            progress.set_postfix(loss=f"{loss_value:.4g}")

        done = step + 1
        if loop.eval_every and done % loop.eval_every == 0 and done < steps:
            elapsed += time.perf_counter() - clock
            _evaluate(model, evaluate, autocast, done, ctx, is_main)
            clock = time.perf_counter()
        if checkpoint is not None and is_main and done % loop.checkpoint_every == 0 and done < steps:
            elapsed += time.perf_counter() - clock
            _save(checkpoint, done, model, optimizer, first_loss, recent, elapsed, ctx)
            clock = time.perf_counter()
    elapsed += time.perf_counter() - clock
    progress.close()

    final = _evaluate(model, evaluate, autocast, steps, ctx, is_main)
    if checkpoint is not None and is_main and checkpoint.exists():
        checkpoint.unlink()
    return {**final, "train_loss": statistics.fmean(recent) if recent else float("nan"),
            "steps": float(steps), "seconds": elapsed}


def _split(output) -> tuple[torch.Tensor, dict]:
    if isinstance(output, tuple):
        loss, extras = output
        return loss, dict(extras)
    return output, {}


def _stats_as_floats(optimizer) -> dict[str, float]:
    stats = getattr(optimizer, "last_stats", None) or {}
    return {key: float(stats[key]) for key in TELEMETRY_KEYS if key in stats}


def _check_divergence(step: int, loss: float, recent: list[float], first: float, factor: float) -> None:
    if not math.isfinite(loss):
        raise Diverged(step, f"non-finite loss ({loss})")
    # The median ignores a lone spike: divergence means the loss stays up.
    if factor and len(recent) >= 3 and statistics.median(recent) > factor * abs(first):
        raise Diverged(step, f"loss {statistics.median(recent):.4g} > {factor:g} x initial {first:.4g}")


def _evaluate(model, evaluate, autocast, step, ctx, is_main) -> dict[str, float]:
    model.eval()
    with torch.no_grad(), autocast:
        values = {key: float(value) for key, value in evaluate(model).items()}
    model.train()
    bad = [key for key, value in values.items() if not math.isfinite(value)]
    if bad:
        raise Diverged(step, f"non-finite evaluation {', '.join(bad)}")
    if is_main:
        ctx.logger.log_eval(step, values)
    return values


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None or dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _progress_bar(enabled: bool, total: int, initial: int, label: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, leave=False, desc=label, dynamic_ncols=True)


# --- distributed ----------------------------------------------------------------------------------


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size under ``torch.distributed`` (``(0, 1)`` when not initialised)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def _mean_across_ranks(loss: torch.Tensor, world: int) -> float:
    if world > 1:
        loss = loss.float().clone()
        torch.distributed.all_reduce(loss)
        loss /= world
    return float(loss)


# --- checkpoints ----------------------------------------------------------------------------------


def _checkpoint_path(ctx: RunContext) -> Path | None:
    if ctx.workdir is None:
        return None
    Path(ctx.workdir).mkdir(parents=True, exist_ok=True)
    return Path(ctx.workdir) / "checkpoint.pt"


def _save(path: Path, next_step: int, model, optimizer, first_loss, recent, elapsed, ctx: RunContext) -> None:
    """Write the checkpoint atomically (:func:`save_atomically`)."""
    payload = {
        "next_step": next_step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "first_loss": first_loss,
        "recent": list(recent),
        "elapsed": elapsed,
        "logger": ctx.logger.snapshot(),
    }
    save_atomically(payload, path)


def save_atomically(payload: dict, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename it over ``path``: a kill never leaves half a file."""
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _resume(path: Path, model, optimizer, ctx: RunContext):
    """Load a checkpoint written by :func:`_save` (``weights_only=True``: no arbitrary pickle)."""
    payload = torch.load(path, map_location=ctx.device, weights_only=True)
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["rng_cpu"].cpu())
    if payload["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state.cpu() for state in payload["rng_cuda"]])
    ctx.logger.restore(payload["logger"])
    return payload["next_step"], payload["first_loss"], payload["recent"], payload["elapsed"]
