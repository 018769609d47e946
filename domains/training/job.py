"""``TrainingJob``: everything the shared trainer needs for one run, built by a domain and run by :func:`train`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from domains.base import RunContext
from domains.training.loop import Evaluate, LossFn, TrainLoop, train


@dataclass
class TrainingJob:
    """The arguments of :func:`domains.training.loop.train` for one run (domains build it; perf scripts and
    tests take it apart to time or inspect a step)."""

    model: torch.nn.Module
    batch_at: Callable[[int], Any]
    loss_fn: LossFn
    evaluate: Evaluate
    loop: TrainLoop

    def run(self, ctx: RunContext) -> dict[str, float]:
        """Train with the recipe in ``ctx`` (see :func:`~domains.training.loop.train`)."""
        return train(self.model, self.batch_at, self.loss_fn, self.evaluate, self.loop, ctx)
