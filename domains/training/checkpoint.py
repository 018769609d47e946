"""The shared trainer's checkpoint store (the :class:`domains.checkpoints.Checkpoint` protocol).

One file, ``<workdir>/checkpoint.pt``: model and optimizer state dicts, the torch RNG states and the loop's run
state. Every rank of a data-parallel run resumes from the same file (shared filesystem); only rank 0 writes it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from domains.checkpoints import save_atomically


class TrainerCheckpoint:
    """Checkpoints of ``model`` and ``optimizer`` in ``folder`` (loaded onto ``device``)."""

    def __init__(self, folder: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device):
        self.path = Path(folder) / "checkpoint.pt"
        self.model, self.optimizer, self.device = model, optimizer, device

    def save(self, step: int, run_state: dict) -> None:
        """Write the model, optimizer, RNG states and ``run_state`` as of ``step`` steps done (atomically)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        save_atomically({
            "step": step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "run": run_state,
        }, self.path)

    def restore(self) -> tuple[int, dict] | None:
        """Load the checkpoint into the model, optimizer and RNGs (``weights_only=True``); ``(step, run_state)``."""
        if not self.path.exists():
            return None
        payload = torch.load(self.path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        torch.set_rng_state(payload["rng_cpu"].cpu())
        if payload["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([state.cpu() for state in payload["rng_cuda"]])
        return payload["step"], payload["run"]

    def remove(self) -> None:
        """Delete the checkpoint file."""
        self.path.unlink(missing_ok=True)
