"""Run checkpoints: one protocol for every domain that resumes a killed run (SPEC §6).

A domain that checkpoints has a config field ``checkpoint_every`` in its budget unit (optimizer steps for the
shared trainer, environment steps for ``mujoco``; 0: never) and keeps its checkpoint in the run's scratch
folder ``ctx.workdir``. Its checkpoint store implements :class:`Checkpoint`:

* ``save(step, run_state)`` -- everything needed to go on from ``step``, with ``run_state`` (plain containers:
  the logger's snapshot, loop statistics, ...), written so that a kill never leaves a half-written checkpoint;
* ``restore()`` -- load it back into the objects the store was built around; ``(step, run_state)``, or None
  when there is nothing to resume;
* ``remove()`` -- delete it once the run has finished.

:class:`Cadence` decides when a save is due; :func:`save_atomically` is the one way payloads reach the disk.
Payloads load with ``torch.load(weights_only=True)``: no arbitrary pickle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch


class Checkpoint(Protocol):
    """A run's checkpoint store (see the module docstring)."""

    def save(self, step: int, run_state: dict) -> None:
        """Write a checkpoint of the run at ``step`` with ``run_state``."""

    def restore(self) -> tuple[int, dict] | None:
        """Load the checkpoint; ``(step, run_state)``, or None when there is none."""

    def remove(self) -> None:
        """Delete the checkpoint (the run finished)."""


@dataclass
class Cadence:
    """Saves every ``every`` budget units (0: never), never at or after the end of the run (``budget``).

    Steps may advance by more than one at a time (an RL rollout): a save is due once ``step`` has crossed a
    multiple of ``every`` that the last save (or the resume point, ``last``) had not.
    """

    every: int
    budget: int
    last: int = 0

    def due(self, step: int) -> bool:
        """Whether a checkpoint should be written at ``step``."""
        return bool(self.every) and 0 < step < self.budget and step // self.every > self.last // self.every

    def saved(self, step: int) -> None:
        """Note that a checkpoint was written (or resumed from) at ``step``."""
        self.last = step


def save_atomically(payload: dict, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename it over ``path``: a kill never leaves half a file."""
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
