"""The ``mujoco`` domain's regime baselines: the returns of an untrained and of a uniformly random policy.

Both are measured with the protocol of a run's final evaluation (:mod:`domains.mujoco.envs`): the same number
of episodes, episode ``i`` reset with ``eval_seed(seed) + i``, undiscounted return, mean over episodes.

* ``untrained_policy``: the run's freshly initialised model (same algorithm, settings and seed, so the same
  weights), acting deterministically, with the observation statistics it has when a run's step-0 evaluation
  is made (VecNormalize has seen the training environments' first reset); the value of the run's step-0
  evaluation over ``eval_episodes`` episodes.
* ``random_policy``: actions drawn uniformly from the action box, from a generator seeded by
  ``(seed, episode)`` (so an episode's actions do not depend on how many other episodes run).
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import gymnasium as gym
import numpy as np
import torch

from domains.mujoco.algos import build_model
from domains.mujoco.envs import ENV_IDS, Evaluator, eval_seed, frozen_observation_normalizer, make_train_env

_RANDOM_ACTION_STREAM = 0x4A7  # keeps the random policy's draws apart from any other seeded stream


def untrained_policy_returns(env: str, algo: str, settings: Mapping[str, Any], n_envs: int, episodes: int,
                             seed: int) -> np.ndarray:
    """Returns of the ``episodes`` evaluation episodes of a run with ``seed`` under its untrained policy.

    SB3 seeds the global python, numpy and torch generators when it builds a model; their states are restored
    afterwards, so calling this leaves the caller's randomness untouched.
    """
    with _global_rng_restored():
        train_env = make_train_env(env, n_envs, settings["normalize"], settings["gamma"])
        evaluator = Evaluator(env, episodes, eval_seed(seed))
        try:
            # The weights do not depend on the optimizer (SB3 builds it after the networks); lr is never used.
            model = build_model(algo, settings, train_env, lr=0.0, seed=seed, optimizer_class=None, optimizer_kwargs={})
            train_env.reset()  # what SB3's learn() does before a run's step-0 evaluation
            normalize = frozen_observation_normalizer(train_env)
            return evaluator.returns(lambda observations: model.predict(normalize(observations), deterministic=True)[0],
                                     episodes)
        finally:
            evaluator.close()
            train_env.close()


def random_policy_returns(env: str, episodes: int, seed: int) -> np.ndarray:
    """Returns of the ``episodes`` evaluation episodes of a run with ``seed`` under uniformly random actions."""
    environment = gym.make(ENV_IDS[env])
    space = environment.action_space
    totals = np.zeros(episodes)
    try:
        for episode in range(episodes):
            actions = np.random.default_rng([_RANDOM_ACTION_STREAM, seed, episode])
            environment.reset(seed=eval_seed(seed) + episode)
            done = False
            while not done:
                action = actions.uniform(space.low, space.high).astype(space.dtype)
                _, reward, terminated, truncated, _ = environment.step(action)
                totals[episode] += reward
                done = terminated or truncated
    finally:
        environment.close()
    return totals


@contextmanager
def _global_rng_restored() -> Iterator[None]:
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
