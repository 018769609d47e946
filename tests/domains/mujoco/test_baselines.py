"""The mujoco domain's regime baselines: the random policy re-run on the real env in the test, the untrained
policy against a run's own step-0 evaluation."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import domains
from benchmarks.protocol.hparams import default_hparams
from domains.base import RunContext
from domains.mujoco import baselines as rl_baselines
from domains.mujoco.algos import resolve_settings
from domains.mujoco.envs import ENV_IDS, eval_seed, mujoco_warnings_as_python_warnings
from tests.support.loggers import ListLogger

# PPO with two rollouts of 128 steps; the step-0 evaluation runs as many episodes as the final one.
TINY = dict(env="Hopper", steps=256, n_steps=128, batch_size=64, n_epochs=5, eval_every=0, eval_episodes=2,
            curve_episodes=2)


@pytest.fixture(scope="module")
def mujoco():
    return domains.get("mujoco")


def test_random_policy_is_uniform_actions_on_the_evaluation_episodes(mujoco):
    config = mujoco.config("smoke", {"env": "Hopper", "eval_episodes": 3})
    values = mujoco.baselines(config, seed=4)
    assert mujoco.gate_baselines == ("untrained_policy", "random_policy") and set(values) == set(mujoco.gate_baselines)
    returns = []
    with mujoco_warnings_as_python_warnings():
        env = gym.make(ENV_IDS["Hopper"])
        for episode in range(3):
            draws = np.random.default_rng([rl_baselines._RANDOM_ACTION_STREAM, 4, episode])
            env.reset(seed=1_000_000 + 1_000 * 4 + episode)  # the evaluation seeds of a run with seed 4
            total, done = 0.0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(draws.uniform(-1.0, 1.0, size=3).astype(np.float32))
                total += reward
                done = terminated or truncated
            returns.append(total)
        env.close()
    assert eval_seed(4) == 1_004_000
    assert values["random_policy"] == pytest.approx(np.mean(returns), rel=1e-12)


def test_untrained_policy_is_the_runs_step_zero_evaluation_and_leaves_global_rng_alone(mujoco):
    config = mujoco.config("smoke", TINY)
    numpy_before, torch_before = np.random.get_state()[1].copy(), torch.random.get_rng_state().clone()
    values = mujoco.baselines(config, seed=3)
    assert np.array_equal(np.random.get_state()[1], numpy_before)
    assert torch.equal(torch.random.get_rng_state(), torch_before)
    logger = ListLogger()
    hparams = default_hparams(mujoco, "stable_spam", config)
    metrics = mujoco.run(config, RunContext(recipe="stable_spam", hparams=hparams, seed=3, logger=logger))
    step, first = logger.evals[0]
    assert step == 0
    assert values["untrained_policy"] == pytest.approx(first["eval_return"], rel=1e-9)
    assert np.isfinite(metrics["eval_return"])


def test_deterministic_and_seed_dependent(mujoco):
    settings = resolve_settings("PPO", vars(mujoco.config("smoke", TINY)))
    with mujoco_warnings_as_python_warnings():
        first, again, other = (rl_baselines.untrained_policy_returns("Hopper", "PPO", settings, 1, 2, seed=seed)
                               for seed in (5, 5, 6))
        assert np.array_equal(first, again) and not np.array_equal(first, other)
        assert np.array_equal(rl_baselines.random_policy_returns("Hopper", 2, 5),
                              rl_baselines.random_policy_returns("Hopper", 2, 5))
