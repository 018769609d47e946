"""Checkpoints of a stable-baselines3 run (the :class:`domains.checkpoints.Checkpoint` protocol).

What is saved, through SB3's public API where it has one:

* the model with ``model.save`` (a zip: parameters and optimizer states as ``.pth`` files, the algorithm's
  attributes -- step counters included -- as JSON) and, off-policy, the replay buffer with
  ``model.save_replay_buffer`` (SB3's own pickle, kept in the run's scratch folder);
* VecNormalize's running statistics (the ``obs_rms`` / ``ret_rms`` arrays) and the run state, in ``state.pt``
  (``torch.load(weights_only=True)``). ``VecNormalize.save`` would pickle the whole wrapper, so it is not used.

``state.pt`` is written last, atomically, and names the model and replay files of its step; older files are
deleted after it. Loading uses ``BaseAlgorithm.load`` with every attribute SB3 stored as a pickle (spaces,
schedules, the policy's keyword arguments with the recipe's class, the last observation, ...) supplied from
the freshly built model instead (``custom_objects``), so no pickle from the checkpoint is ever loaded there.

A resumed run goes on from step N with the RNGs reseeded from (seed, N) and the training environments reset:
it is reproducible from the checkpoint, but not identical to a run that was never interrupted (SB3 keeps no
RNG state, and a MuJoCo episode in progress cannot be restored).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Callable

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from domains.checkpoints import Cadence, save_atomically

_RUNNING_STATS = ("obs_rms", "ret_rms")  # VecNormalize's RunningMeanStd attributes
_PICKLED = ":serialized:"  # how SB3's data JSON marks an attribute it stored as a cloudpickle


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
        model_file = f"model_{step}.zip"
        self.model.save(self.folder / model_file)
        replay = None
        if getattr(self.model, "replay_buffer", None) is not None:
            replay = f"replay_{step}.pkl"
            self.model.save_replay_buffer(self.folder / replay)
        payload = {"step": step, "model": model_file, "replay": replay,
                   "vec_normalize": _running_stats(self.train_env), "run": run_state}
        save_atomically(payload, self.state_path)
        for path in [*self.folder.glob("model_*.zip"), *self.folder.glob("replay_*.pkl")]:
            if path.name not in (model_file, replay):
                path.unlink()

    def restore(self) -> tuple[int, dict[str, Any]] | None:
        """Load the checkpoint (model, replay buffer, VecNormalize statistics); ``(step, run_state)`` or None."""
        if not self.state_path.exists():
            return None
        payload = torch.load(self.state_path, map_location="cpu", weights_only=True)
        fresh = self.model
        model_path = self.folder / payload["model"]
        pickled = pickled_attributes(model_path)
        missing = [name for name in pickled if not hasattr(fresh, name)]
        if missing:  # an SB3 version that pickles more than this code knows how to supply
            raise RuntimeError(f"cannot resume: the checkpoint pickles {', '.join(missing)}, which a new "
                               f"{type(fresh).__name__} does not have")
        replacements = {name: getattr(fresh, name) for name in pickled}
        self.model = type(fresh).load(model_path, env=self.train_env, device=fresh.device,
                                      custom_objects=replacements)
        if payload["replay"] is not None:
            self.model.load_replay_buffer(self.folder / payload["replay"])
        _load_running_stats(self.train_env, payload["vec_normalize"])
        self.model.set_random_seed(self.seed + payload["step"])
        return payload["step"], payload["run"]

    def remove(self) -> None:
        """Delete the checkpoint files (the run finished)."""
        for path in [self.state_path, *self.folder.glob("model_*.zip"), *self.folder.glob("replay_*.pkl")]:
            path.unlink(missing_ok=True)


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
    if not saved:
        return
    if not isinstance(env, VecNormalize):
        raise ValueError("the checkpoint holds VecNormalize statistics but the training environment has none")
    for name, values in saved.items():
        stats = getattr(env, name)
        stats.mean = values["mean"].numpy().copy()
        stats.var = values["var"].numpy().copy()
        stats.count = float(values["count"])


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
