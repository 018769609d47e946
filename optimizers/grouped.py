"""`GroupedStepOptimizer`: the outer loop of the fused optimizers (`SPAM`, `StableSPAM`).

``step()`` partitions each parameter group's tensors with a gradient by device, state dtype and path
(the chunked CPU path of `optimizers.chunked` or the multi-tensor ``torch._foreach_*`` path), and hands each
partition to the subclass's ``_update``, which sees tensors it can update with one set of multi-tensor ops.
"""
from __future__ import annotations

import abc

import torch
from torch import Tensor

from .base import InstrumentedOptimizer, StatsAccumulator, evaluate_closure
from .chunked import worth_chunking
from .foreach_utils import group_indices, state_dtype


class GroupedStepOptimizer(InstrumentedOptimizer, metaclass=abc.ABCMeta):
    """Base class: a global step counter ``self._counters["step"]`` (set it in ``__init__``), the partitioned
    ``step()`` and the stats protocol's bookkeeping; subclasses implement ``_update``."""

    #: Use the chunked CPU path (`optimizers.chunked`) for large dense CPU tensors; False forces the
    #: multi-tensor (``torch._foreach_*``) path that accelerators and small tensors use.
    cpu_fast_path = True

    @torch.no_grad()
    def step(self, closure=None):
        """One step for every parameter with a gradient. Returns the closure's loss, if any."""
        loss = evaluate_closure(closure)
        self._counters["step"] += 1
        stats = StatsAccumulator() if self.collect_stats else None
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            chunked = [self.cpu_fast_path and worth_chunking(p) for p in params]
            for idx in group_indices((p.device, state_dtype(p), c) for p, c in zip(params, chunked)):
                self._update([params[i] for i in idx], group, stats, chunked[idx[0]])
        self.last_stats = stats.result() if stats is not None else None
        return loss

    @abc.abstractmethod
    def _update(self, params: list[Tensor], group: dict, stats: StatsAccumulator | None, fast: bool) -> None:
        """The step for tensors of one group sharing a device and a state dtype; ``fast``: the chunked CPU path."""
