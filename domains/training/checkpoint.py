"""The shared trainer's checkpoint store (the :class:`domains.checkpoints.Checkpoint` protocol).

One file, ``<workdir>/checkpoint.pt``: model and optimizer state dicts, the torch RNG states and the loop's run
state. Every rank of a data-parallel run resumes from the same file (shared filesystem); only rank 0 writes it.
A file that cannot be loaded into this run's model and optimizer is set aside
(:func:`domains.checkpoints.set_aside`) and the run starts afresh, with the model and optimizer as they were.
"""

from __future__ import annotations

import copy
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from domains.checkpoints import save_atomically, set_aside

# What a damaged or foreign checkpoint raises while it is read or loaded (never a KeyboardInterrupt).
UNREADABLE = (OSError, EOFError, RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError,
              pickle.UnpicklingError, zipfile.BadZipFile)
_KEYS = ("step", "model", "optimizer", "rng_cpu", "rng_cuda", "run")


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
        """Load the checkpoint into the model, optimizer and RNGs (``weights_only=True``); ``(step, run_state)``,
        or None when there is none or it is unreadable (then it is set aside and nothing is changed)."""
        if not self.path.exists():
            return None
        fresh_optimizer = copy.deepcopy(self.optimizer.state_dict())  # small: restore() runs before any step
        try:
            payload = torch.load(self.path, map_location=self.device, weights_only=True)
            _check_payload(payload, self.model.state_dict())
            self.optimizer.load_state_dict(payload["optimizer"])
            torch.set_rng_state(payload["rng_cpu"].cpu())
        except UNREADABLE as exc:
            self.optimizer.load_state_dict(fresh_optimizer)
            set_aside([self.path], exc)
            return None
        self.model.load_state_dict(payload["model"])  # checked above: same names and shapes
        if payload["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([state.cpu() for state in payload["rng_cuda"]])
        return int(payload["step"]), payload["run"]

    def remove(self) -> None:
        """Delete the checkpoint file."""
        self.path.unlink(missing_ok=True)


def _check_payload(payload, model_state: dict) -> None:
    """Raise (one of :data:`UNREADABLE`) unless ``payload`` is a checkpoint of a model with ``model_state``'s
    tensor names and shapes."""
    if not isinstance(payload, dict) or any(key not in payload for key in _KEYS):
        found = ", ".join(map(str, payload)) if isinstance(payload, dict) else type(payload).__name__
        raise KeyError(f"expected keys {', '.join(_KEYS)}, found {found}")
    if not isinstance(payload["step"], int) or payload["step"] < 0 or not isinstance(payload["run"], dict):
        raise ValueError("malformed step or run state")
    saved = payload["model"]
    if not isinstance(saved, dict) or saved.keys() != model_state.keys():
        raise KeyError("the model's parameter names differ from this run's model")
    for name, tensor in model_state.items():
        if not isinstance(saved[name], torch.Tensor) or saved[name].shape != tensor.shape:
            raise ValueError(f"tensor {name!r} does not have this run's shape {tuple(tensor.shape)}")
    if not isinstance(payload["rng_cpu"], torch.Tensor) or not isinstance(payload["rng_cuda"], (list, tuple)):
        raise ValueError("malformed RNG states")
