"""MuJoCo environments for the ``mujoco`` domain: ids, the training VecEnv, deterministic evaluation, warnings.

Evaluation protocol (SPEC §2.3): a separate set of environments, never the training ones; the policy acts
deterministically; episode ``i`` of every evaluation starts from ``env.reset(seed=eval_seed + i)``, so two
evaluations of the same policy see the same start states and return the same numbers. When training
normalises observations (VecNormalize), evaluation applies the training statistics as they are at that
moment, frozen: evaluation never updates them.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Callable, Iterator

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

# Short name (config value) -> gymnasium id. The paper's three tasks come first.
ENV_IDS = {"HalfCheetah": "HalfCheetah-v5", "Ant": "Ant-v5", "Hopper": "Hopper-v5", "Walker2d": "Walker2d-v5"}

# Evaluation episodes are seeded far from the training environments (which use seed .. seed + n_envs - 1).
_EVAL_SEED_BASE = 1_000_000
_EVAL_SEEDS_PER_RUN_SEED = 1_000

Policy = Callable[[np.ndarray], np.ndarray]  # batch of raw observations -> batch of actions


def eval_seed(run_seed: int) -> int:
    """Reset seed of the first evaluation episode of a run with seed ``run_seed``."""
    return _EVAL_SEED_BASE + _EVAL_SEEDS_PER_RUN_SEED * run_seed


def make_train_env(env: str, n_envs: int, normalize: bool, gamma: float) -> VecEnv:
    """The training VecEnv (``n_envs`` copies in this process; SB3 seeds them from the model's seed).

    ``normalize`` wraps it in VecNormalize (observations and rewards, the RL Zoo's choice for PPO on
    MuJoCo); ``gamma`` is the discount VecNormalize uses for its reward statistics.
    """
    vec_env = make_vec_env(ENV_IDS[env], n_envs=n_envs)
    return VecNormalize(vec_env, norm_obs=True, norm_reward=True, gamma=gamma) if normalize else vec_env


def frozen_observation_normalizer(train_env: VecEnv) -> Callable[[np.ndarray], np.ndarray]:
    """Observation transform that evaluation applies: the training env's VecNormalize statistics, read-only."""
    if isinstance(train_env, VecNormalize):
        return train_env.normalize_obs  # uses obs_rms without updating it (updates happen in step/reset)
    return lambda observations: observations


class Evaluator:
    """Deterministic, seeded evaluation on its own environments; episodes run side by side in one batch.

    Batching the episodes turns ``episodes`` policy calls per time step into one, which is where most of
    the evaluation time would otherwise go.
    """

    def __init__(self, env: str, max_episodes: int, first_seed: int):
        self.envs = [gym.make(ENV_IDS[env]) for _ in range(max_episodes)]
        self.first_seed = first_seed

    def returns(self, policy: Policy, episodes: int) -> np.ndarray:
        """Undiscounted return of each of the first ``episodes`` seeded episodes under ``policy``."""
        if not 1 <= episodes <= len(self.envs):
            raise ValueError(f"episodes must be in 1..{len(self.envs)}, got {episodes}")
        envs = self.envs[:episodes]
        observations = np.stack([env.reset(seed=self.first_seed + i)[0] for i, env in enumerate(envs)])
        totals = np.zeros(episodes)
        running = np.ones(episodes, dtype=bool)
        while running.any():
            active = np.flatnonzero(running)
            actions = policy(observations[active])
            for index, action in zip(active, actions):
                observation, reward, terminated, truncated, _ = envs[index].step(action)
                observations[index] = observation
                totals[index] += reward
                running[index] = not (terminated or truncated)
        return totals

    def close(self) -> None:
        """Close every evaluation environment."""
        for env in self.envs:
            env.close()


class MujocoWarning(RuntimeWarning):
    """A warning MuJoCo's C library raised (model compiler deprecations, unstable simulation, ...)."""


@contextmanager
def mujoco_warnings_as_python_warnings() -> Iterator[None]:
    """Turn MuJoCo's warnings into Python :class:`MujocoWarning` warnings while the block runs.

    By default MuJoCo appends every warning to ``MUJOCO_LOG.TXT`` in the current directory (littering
    wherever the user started the suite) and prints it on stderr each time (gymnasium's v5 assets trigger
    a compiler deprecation warning at every environment creation). With a user handler installed MuJoCo
    does neither; Python's warning filters then show each distinct message once and let users silence or
    escalate them. The previous handler is restored on exit.
    """
    import mujoco

    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(lambda message: warnings.warn(f"MuJoCo: {message}", MujocoWarning, stacklevel=2))
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)
