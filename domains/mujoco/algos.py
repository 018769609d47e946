"""The stable-baselines3 algorithms of the ``mujoco`` domain and their default hyper-parameters.

Defaults are the RL Zoo's MuJoCo settings (rl-baselines3-zoo ``hyperparams/*.yml``), which for these
tasks are SB3's own defaults plus:

* PPO: observation and reward normalisation (VecNormalize) -- the zoo's ``mujoco-defaults`` entry
  (n_steps 2048, batch 64, 10 epochs, gamma 0.99, GAE 0.95, clip 0.2, max_grad_norm 0.5; the PPO paper's
  MuJoCo setting);
* SAC: ``learning_starts`` 10,000 (zoo MuJoCo entry), batch 256, buffer 1M, tau 0.005, one gradient
  step per environment step, learned entropy temperature;
* TD3: ``learning_starts`` 10,000, Gaussian exploration noise of std 0.1 (zoo MuJoCo entry), batch 256.

Network sizes are SB3's defaults (PPO 64-64 tanh, SAC 256-256, TD3 400-300). The optimizer is never named
here: the caller passes the class that replaces Adam in every network.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import VecEnv

ALGORITHMS = {"PPO": PPO, "SAC": SAC, "TD3": TD3}

_OFF_POLICY = dict(buffer_size=1_000_000, learning_starts=10_000, batch_size=256, tau=0.005, gamma=0.99,
                   train_freq=1, gradient_steps=1, normalize=False)

# Per algorithm: every hyper-parameter a config may set, with its default. ``normalize`` is the domain's
# VecNormalize switch; the rest go to the SB3 constructor (``action_noise_std`` becomes an action noise).
ALGO_DEFAULTS: dict[str, dict[str, Any]] = {
    "PPO": dict(n_steps=2048, batch_size=64, n_epochs=10, gamma=0.99, gae_lambda=0.95, clip_range=0.2,
                ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, normalize=True),
    "SAC": dict(_OFF_POLICY, ent_coef=None),  # None: SB3's "auto" (learned temperature)
    "TD3": dict(_OFF_POLICY, action_noise_std=0.1),
}

# SB3 logger key -> telemetry name. The loss of the primary network (PPO's single actor-critic, the
# critic of SAC/TD3) is ``loss``; PPO's own "train/clip_fraction" (ratio clipping) is deliberately not
# forwarded, since ``clip_fraction`` in telemetry is the optimizer's.
LOSS_KEYS: dict[str, dict[str, str]] = {
    "PPO": {"train/loss": "loss", "train/value_loss": "value_loss",
            "train/policy_gradient_loss": "policy_loss", "train/approx_kl": "approx_kl"},
    "SAC": {"train/critic_loss": "loss", "train/actor_loss": "actor_loss", "train/ent_coef": "ent_coef"},
    "TD3": {"train/critic_loss": "loss", "train/actor_loss": "actor_loss"},
}


def resolve_settings(algo: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The algorithm's defaults with the config's non-None values for its own hyper-parameters applied.

    Values for hyper-parameters of other algorithms are ignored (a preset may tune PPO's rollout length
    and still be run with SAC); the returned dict is what the run uses and logs.
    """
    settings = dict(ALGO_DEFAULTS[algo])
    settings.update({key: value for key, value in overrides.items() if key in settings and value is not None})
    return settings


def gradient_updates(algo: str, settings: Mapping[str, Any], steps: int, n_envs: int) -> int:
    """How many optimizer steps the primary network takes in ``steps`` environment steps."""
    if algo == "PPO":
        rollout = settings["n_steps"] * n_envs
        return math.ceil(steps / rollout) * settings["n_epochs"] * math.ceil(rollout / settings["batch_size"])
    collected_per_train = settings["train_freq"] * n_envs
    per_train = settings["gradient_steps"] if settings["gradient_steps"] > 0 else collected_per_train
    return max(0, steps - settings["learning_starts"]) // collected_per_train * per_train


def build_model(algo: str, settings: Mapping[str, Any], env: VecEnv, *, lr: float,
                optimizer_class: type[torch.optim.Optimizer] | None, optimizer_kwargs: Mapping[str, Any],
                seed: int, device: torch.device | str = "cpu") -> BaseAlgorithm:
    """The SB3 model with ``optimizer_class`` in every network (policy and critics / value function);
    ``None`` keeps SB3's own (for a model that is never trained, e.g. the untrained-policy baseline).

    ``lr`` is the algorithm's constant ``learning_rate``; SB3 hands it to each optimizer. ``seed`` seeds
    python, numpy (replay sampling, action noise), torch and the training environments' resets. SAC's
    scalar entropy temperature keeps the Adam that SB3 builds for it (``ent_coef_optimizer``).
    """
    kwargs = {key: value for key, value in settings.items() if key not in ("normalize", "action_noise_std")}
    if algo == "SAC" and kwargs.get("ent_coef") is None:
        kwargs["ent_coef"] = "auto"
    if "action_noise_std" in settings:
        n_actions = env.action_space.shape[-1]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(n_actions), settings["action_noise_std"] * np.ones(n_actions))
    policy_kwargs = dict(optimizer_class=optimizer_class, optimizer_kwargs=dict(optimizer_kwargs)) \
        if optimizer_class is not None else {}
    return ALGORITHMS[algo]("MlpPolicy", env, learning_rate=lr, policy_kwargs=policy_kwargs, seed=seed,
                            device=device, verbose=0, **kwargs)


def network_optimizers(model: BaseAlgorithm) -> dict[str, torch.optim.Optimizer]:
    """The optimizers SB3 built from ``optimizer_class``, by telemetry prefix (primary network first, '')."""
    if isinstance(model, PPO):
        return {"": model.policy.optimizer}
    return {"": model.critic.optimizer, "actor_": model.actor.optimizer}
