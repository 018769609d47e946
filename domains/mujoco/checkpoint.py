"""Checkpoints of a MuJoCo run, so that a killed run (hours at the paper's 1M SAC steps) resumes where it stopped.

A checkpoint of environment step N holds, in the run's ``ctx.workdir``:

* ``state.pt`` (``torch.load(weights_only=True)``): SB3's networks and every optimizer's state dict (the
  recipe's, with its step counters; SAC's temperature Adam), SAC's temperature, SB3's counters
  (``num_timesteps``, updates, episodes), VecNormalize's running statistics, and the run's own state handed
  in by the domain (the records logged so far, the evaluation schedule, the time spent);
* ``replay_N.pkl``: the replay buffer of an off-policy algorithm (SB3's ``save_replay_buffer``).

``state.pt`` is replaced atomically and last, naming the step whose files are complete; older files are
removed only after that, so a kill at any moment leaves a usable checkpoint. :class:`Checkpointer` saves at
the start of a rollout (right after an update) once ``every_seconds`` of wall time have passed since the
last save: time-based, because the cost of a run per step differs by orders of magnitude across presets.

A resumed run goes on from step N with the RNGs reseeded from (seed, N) and the training environments
reset: it is reproducible from the checkpoint, but not identical to a run that was never interrupted (SB3
keeps no RNG state, and a MuJoCo episode in progress cannot be restored).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from domains.training.loop import save_atomically

CHECKPOINT_SECONDS = 600.0  # wall time between two checkpoints of a run
_RUNNING_STATS = ("obs_rms", "ret_rms")  # VecNormalize's RunningMeanStd attributes


class RunCheckpoint:
    """The checkpoint files of one run in ``folder``."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.state_path = self.folder / "state.pt"

    def save(self, model: BaseAlgorithm, train_env: VecEnv, run_state: dict[str, Any]) -> None:
        """Write a checkpoint of ``model`` at its current step, with ``run_state`` (plain containers)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        step = int(model.num_timesteps)
        replay = None
        if getattr(model, "replay_buffer", None) is not None:
            replay = f"replay_{step}.pkl"
            model.save_replay_buffer(self.folder / replay)
        _, variable_names = model._get_torch_save_params()
        payload = {
            "step": step,
            "params": model.get_parameters(),
            "variables": {name: getattr(model, name).detach().clone() for name in variable_names},
            "counters": {"num_timesteps": step, "n_updates": int(getattr(model, "_n_updates", 0)),
                         "episode_num": int(model._episode_num)},
            "vec_normalize": _running_stats(train_env),
            "replay": replay,
            "run": run_state,
        }
        save_atomically(payload, self.state_path)
        for path in self.folder.glob("replay_*.pkl"):
            if path.name != replay:
                path.unlink()

    def restore(self, model: BaseAlgorithm, train_env: VecEnv, seed: int) -> dict[str, Any] | None:
        """Load the checkpoint into ``model`` (built as for a fresh run) and ``train_env``; returns the
        payload (``step``, ``run``: the run state handed to :meth:`save`), or None when there is none."""
        if not self.state_path.exists():
            return None
        payload = torch.load(self.state_path, map_location=model.device, weights_only=True)
        model.set_parameters(payload["params"], exact_match=True, device=model.device)
        for name, value in payload["variables"].items():
            getattr(model, name).data.copy_(value)  # in place: SAC's temperature Adam holds this tensor
        counters = payload["counters"]
        model.num_timesteps, model._episode_num = counters["num_timesteps"], counters["episode_num"]
        if hasattr(model, "_n_updates"):
            model._n_updates = counters["n_updates"]
        if payload["replay"] is not None:
            model.load_replay_buffer(self.folder / payload["replay"])
        _load_running_stats(train_env, payload["vec_normalize"])
        model._last_obs = None  # learn() resets the (new) training environments
        model.set_random_seed(seed + payload["step"])
        return payload

    def remove(self) -> None:
        """Delete the checkpoint files (the run finished)."""
        for path in [self.state_path, *self.folder.glob("replay_*.pkl")]:
            path.unlink(missing_ok=True)


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
    """Calls ``save()`` at the start of a rollout once ``every_seconds`` have passed since the last call
    (or since training started), except at or after ``budget`` (the run is about to finish)."""

    def __init__(self, save: Callable[[], None], every_seconds: float, budget: int):
        super().__init__()
        self.save = save
        self.every_seconds = every_seconds
        self.budget = budget
        self._last = time.monotonic()

    def _on_training_start(self) -> None:
        self._last = time.monotonic()

    def _on_rollout_start(self) -> None:
        if 0 < self.num_timesteps < self.budget and time.monotonic() - self._last >= self.every_seconds:
            self.save()
            self._last = time.monotonic()

    def _on_step(self) -> bool:
        return True
