"""Checkpoints of a stable-baselines3 run (the :class:`domains.checkpoints.Checkpoint` protocol).

What is saved, through SB3's public API where it has one:

* the model with ``model.save`` (a zip: parameters and optimizer states as ``.pth`` files, the algorithm's
  attributes -- step counters included -- as JSON) and, off-policy, the replay buffer's arrays and position in
  an ``.npz`` (``np.load(allow_pickle=False)``; SB3's own ``save_replay_buffer`` pickles the whole buffer, so it
  is not used: the arrays are copied back into the buffer the loaded model builds, through its public
  attributes);
* VecNormalize's running statistics (the ``obs_rms`` / ``ret_rms`` arrays) and the run state, in ``state.pt``
  (``torch.load(weights_only=True)``). ``VecNormalize.save`` would pickle the whole wrapper, so it is not used.

``state.pt`` is written last, atomically, and names the model and replay files of its step; older files are
deleted after it. The names read back must be exactly those of its step (``model_<step>.zip``,
``replay_<step>.npz``), so a planted ``state.pt`` cannot point at a file elsewhere on disk. A checkpoint that
cannot be read back is set aside (:func:`domains.checkpoints.set_aside`) and the run starts afresh. Loading
uses ``BaseAlgorithm.load`` with every attribute SB3 stored as a pickle (spaces, schedules, the policy's keyword
arguments with the recipe's class, the last observation, ...) supplied from the freshly built model instead
(``custom_objects``), so no pickle from the checkpoint is ever loaded there.

A resumed run goes on from step N with the RNGs reseeded from (seed, N) and the training environments reset:
it is reproducible from the checkpoint, but not identical to a run that was never interrupted (SB3 keeps no
RNG state, and a MuJoCo episode in progress cannot be restored).
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from domains.checkpoints import Cadence, save_atomically, set_aside

_RUNNING_STATS = ("obs_rms", "ret_rms")  # VecNormalize's RunningMeanStd attributes
_PICKLED = ":serialized:"  # how SB3's data JSON marks an attribute it stored as a cloudpickle
_REPLAY_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
# What a damaged or foreign checkpoint raises while it is read or loaded.
UNREADABLE = (OSError, EOFError, RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError,
              AssertionError, pickle.UnpicklingError, zipfile.BadZipFile)


class IncompatibleCheckpoint(Exception):
    """The checkpoint is readable but this SB3 version pickles more than the code can supply (fails the run)."""


class SB3Checkpoint:
    """The checkpoint files of one run in ``folder``, for ``model`` training on ``train_env``.

    :meth:`restore` replaces :attr:`model` with the loaded one (SB3 loads into a new object).
    """

    def __init__(self, folder: str | Path, model: BaseAlgorithm, train_env: VecEnv, seed: int):
        self.folder = Path(folder)
        self.state_path = self.folder / "state.pt"
        self.model, self.train_env, self.seed = model, train_env, seed

    def save(self, step: int, run_state: dict[str, Any]) -> None:
        """Write a checkpoint of the model at ``step`` (its ``num_timesteps``) with ``run_state``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        model_file = _model_file(step)
        self.model.save(self.folder / model_file)
        replay = None
        if getattr(self.model, "replay_buffer", None) is not None:
            replay = _replay_file(step)
            save_replay_arrays(self.model.replay_buffer, self.folder / replay)
        payload = {"step": step, "model": model_file, "replay": replay,
                   "vec_normalize": _running_stats(self.train_env), "run": run_state}
        save_atomically(payload, self.state_path)
        for path in self._files():
            if path.name not in (model_file, replay, self.state_path.name):
                path.unlink()

    def restore(self) -> tuple[int, dict[str, Any]] | None:
        """Load the checkpoint (model, replay buffer, VecNormalize statistics); ``(step, run_state)``, or None when
        there is none or it is unreadable (then its files are set aside and the fresh model is kept)."""
        if not self.state_path.exists():
            return None
        fresh = self.model
        involved = [self.state_path]
        try:
            payload = torch.load(self.state_path, map_location="cpu", weights_only=True)
            step, model_file, replay_file, run_state = _checked_payload(payload)
            involved += [self.folder / name for name in (model_file, replay_file) if name is not None]
            model_path = self.folder / model_file
            pickled = pickled_attributes(model_path)
            missing = [name for name in pickled if not hasattr(fresh, name)]
            if missing:  # an SB3 version that pickles more than this code knows how to supply
                raise IncompatibleCheckpoint(f"cannot resume: the checkpoint pickles {', '.join(missing)}, which a "
                                             f"new {type(fresh).__name__} does not have")
            replacements = {name: getattr(fresh, name) for name in pickled}
            loaded = type(fresh).load(model_path, env=self.train_env, device=fresh.device,
                                      custom_objects=replacements)
            if replay_file is not None:
                load_replay_arrays(loaded.replay_buffer, self.folder / replay_file)
            _load_running_stats(self.train_env, payload["vec_normalize"])
        except UNREADABLE as exc:
            set_aside(involved, exc)
            return None
        self.model = loaded
        self.model.set_random_seed(self.seed + step)
        return step, run_state

    def remove(self) -> None:
        """Delete the checkpoint files (the run finished)."""
        for path in [self.state_path, *self._files()]:
            path.unlink(missing_ok=True)

    def _files(self) -> list[Path]:
        return [*self.folder.glob("model_*.zip"), *self.folder.glob("replay_*.npz"), *self.folder.glob("replay_*.pkl")]


def _model_file(step: int) -> str:
    return f"model_{step}.zip"


def _replay_file(step: int) -> str:
    return f"replay_{step}.npz"


def _checked_payload(payload: Any) -> tuple[int, str, str | None, dict]:
    """(step, model file, replay file, run state) of a ``state.pt`` payload; the file names must be exactly those
    :meth:`SB3Checkpoint.save` writes for its step (so they stay in the run's folder)."""
    if not isinstance(payload, dict) or any(key not in payload for key in ("step", "model", "replay", "run")):
        raise KeyError("state.pt lacks step, model, replay or run")
    step = payload["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"state.pt: bad step {step!r}"[:120])
    if payload["model"] != _model_file(step):
        raise ValueError(f"state.pt names model file {str(payload['model'])[:80]!r}, not {_model_file(step)!r}")
    if payload["replay"] not in (None, _replay_file(step)):
        raise ValueError(f"state.pt names replay file {str(payload['replay'])[:80]!r}, not {_replay_file(step)!r}")
    if not isinstance(payload["run"], dict) or not isinstance(payload.get("vec_normalize", {}), dict):
        raise ValueError("state.pt: malformed run state")
    payload.setdefault("vec_normalize", {})
    return step, payload["model"], payload["replay"], payload["run"]


def save_replay_arrays(buffer, path: Path) -> None:
    """Write the filled rows of an SB3 ``ReplayBuffer`` (its arrays, ``pos`` and ``full``) to an ``.npz`` at
    ``path``, atomically; no pickle."""
    rows = buffer.buffer_size if buffer.full else buffer.pos
    arrays = {name: getattr(buffer, name)[:rows] for name in _REPLAY_ARRAYS if hasattr(buffer, name)}
    arrays["pos"] = np.asarray(buffer.pos, dtype=np.int64)
    arrays["full"] = np.asarray(buffer.full, dtype=np.bool_)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_replay_arrays(buffer, path: Path) -> None:
    """Fill an SB3 ``ReplayBuffer`` built for the same spaces and size from an ``.npz`` written by
    :func:`save_replay_arrays` (``allow_pickle=False``); ValueError, leaving the buffer as it was, when the
    file does not fit it."""
    with np.load(path, allow_pickle=False) as saved:
        pos, full = int(saved["pos"]), bool(saved["full"])
        rows = buffer.buffer_size if full else pos
        if not 0 <= pos <= buffer.buffer_size or (full and pos >= buffer.buffer_size):
            raise ValueError(f"replay position {pos} does not fit a buffer of {buffer.buffer_size}")
        arrays = {name: saved[name] for name in _REPLAY_ARRAYS if hasattr(buffer, name)}
    for name, values in arrays.items():
        target = getattr(buffer, name)
        if values.dtype != target.dtype or values.shape != (rows, *target.shape[1:]):
            raise ValueError(f"replay array {name!r} is {values.dtype}{list(values.shape)}, the buffer takes "
                             f"{target.dtype}{[rows, *target.shape[1:]]}")
    for name, values in arrays.items():
        getattr(buffer, name)[:rows] = values
    buffer.pos, buffer.full = pos, full


def pickled_attributes(model_zip: Path) -> list[str]:
    """Names of the attributes SB3 stored as pickles in a ``model.save`` zip (read from its JSON, not unpickled)."""
    with zipfile.ZipFile(model_zip) as archive:
        data = json.loads(archive.read("data").decode())
    return [name for name, value in data.items() if isinstance(value, dict) and _PICKLED in value]


def _running_stats(env: VecEnv) -> dict[str, dict[str, torch.Tensor]]:
    if not isinstance(env, VecNormalize):
        return {}
    return {name: {"mean": torch.as_tensor(getattr(env, name).mean), "var": torch.as_tensor(getattr(env, name).var),
                   "count": torch.as_tensor(float(getattr(env, name).count))} for name in _RUNNING_STATS}


def _load_running_stats(env: VecEnv, saved: dict[str, dict[str, torch.Tensor]]) -> None:
    """Set VecNormalize's statistics from ``saved``; ValueError, changing nothing, when they do not fit ``env``."""
    if not saved:
        return
    if not isinstance(env, VecNormalize):
        raise ValueError("the checkpoint holds VecNormalize statistics but the training environment has none")
    values = {}
    for name in _RUNNING_STATS:
        stats, entry = getattr(env, name), saved[name]
        mean, var = entry["mean"].numpy().copy(), entry["var"].numpy().copy()
        if mean.shape != np.shape(stats.mean) or var.shape != np.shape(stats.var):
            raise ValueError(f"VecNormalize {name} statistics of shape {list(mean.shape)} do not fit this environment")
        values[name] = (mean, var, float(entry["count"]))
    for name, (mean, var, count) in values.items():
        stats = getattr(env, name)
        stats.mean, stats.var, stats.count = mean, var, count


class Checkpointer(BaseCallback):
    """Calls ``save()`` at the start of a rollout when ``cadence`` says a checkpoint is due."""

    def __init__(self, save: Callable[[], None], cadence: Cadence):
        super().__init__()
        self.save = save
        self.cadence = cadence

    def _on_rollout_start(self) -> None:
        if self.cadence.due(self.num_timesteps):
            self.save()
            self.cadence.saved(self.num_timesteps)

    def _on_step(self) -> bool:
        return True
