"""Run checkpoints: one protocol for every domain that resumes a killed run (SPEC §6).

A domain that checkpoints has a config field ``checkpoint_every`` in its budget unit (optimizer steps for the
shared trainer, environment steps for ``mujoco``; 0: never) and keeps its checkpoint in the run's scratch
folder ``ctx.workdir``. Its checkpoint store implements :class:`Checkpoint`:

* ``save(step, run_state)`` -- everything needed to go on from ``step``, with ``run_state`` (plain containers:
  the logger's snapshot, loop statistics, ...), written so that a kill never leaves a half-written checkpoint;
* ``restore()`` -- load it back into the objects the store was built around; ``(step, run_state)``, or None
  when there is nothing to resume. A checkpoint that cannot be read back (garbage, a truncated or empty file,
  missing keys, tensors of the wrong shape) counts as absent: :func:`set_aside` moves its files out of the way
  with a one-line warning, the objects are left as they were built, and the run starts from step 0;
* ``remove()`` -- delete it once the run has finished.

:class:`Cadence` decides when a save is due; :func:`save_atomically` is the one way payloads reach the disk
(through a scratch file of this process's own, so two processes never write the same temporary file).
Payloads load with ``torch.load(weights_only=True)``: no arbitrary pickle.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Protocol

import torch

log = logging.getLogger(__name__)
SET_ASIDE = "set_aside"  # sibling folder of a run's scratch folder that unreadable checkpoints are moved to


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
    """``torch.save`` to a scratch file of this process in ``path``'s folder, then rename it over ``path``: a
    kill never leaves half a file, and concurrent writers never share a temporary file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def set_aside(paths: Iterable[Path], reason: BaseException) -> Path | None:
    """Move the files of an unreadable checkpoint to ``<run folder>/../set_aside/<run folder name>-<UTC time>/``
    (kept for inspection, out of the way of the run's next attempt) and log a one-line warning; returns the
    folder they went to (None when none of them existed)."""
    paths = [Path(p) for p in paths if Path(p).exists()]
    if not paths:
        return None
    run_folder = paths[0].parent
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = run_folder.parent / SET_ASIDE / f"{run_folder.name}-{stamp}-{os.getpid()}"
    target.mkdir(parents=True, exist_ok=True)
    for path in paths:
        os.replace(path, target / path.name)
    message = " ".join(f"{type(reason).__name__}: {reason}".split())
    message = message if len(message) <= 160 else message[:157] + "..."
    log.warning("checkpoint in %s is unreadable (%s); moved to %s, the run starts from step 0",
                run_folder, message, target)
    return target
