"""Resume through SB3's public save/load: fails loudly when an SB3 upgrade changes what a checkpoint restores."""

from __future__ import annotations

import torch

import domains
import optimizers
from domains.mujoco.algos import build_model, resolve_settings
from domains.mujoco.checkpoint import SB3Checkpoint, pickled_attributes
from domains.mujoco.envs import make_train_env, mujoco_warnings_as_python_warnings


def _sac(env, seed=0):
    config = domains.get("mujoco").config("smoke", {"algo": "SAC", "learning_starts": 16, "batch_size": 16,
                                                    "buffer_size": 1000})
    settings = resolve_settings("SAC", vars(config))
    return build_model("SAC", settings, env, lr=3e-4, seed=seed, optimizer_class=optimizers.recipe_class("stable_spam"),
                       optimizer_kwargs={})


def _equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


def test_a_sac_checkpoint_restores_networks_optimizers_temperature_counters_and_replay(tmp_path):
    with mujoco_warnings_as_python_warnings():
        env = make_train_env("Hopper", 1, normalize=False, gamma=0.99)
        trained = _sac(env)
        trained.learn(48)
        SB3Checkpoint(tmp_path, trained, env, seed=0).save(trained.num_timesteps, {"note": "kept"})
        # every attribute SB3 pickled is one a fresh model has, so none is ever unpickled from the file
        pickled = pickled_attributes(tmp_path / "model_48.zip")
        assert "policy_kwargs" in pickled and all(hasattr(_sac(env), name) for name in pickled)

        checkpoint = SB3Checkpoint(tmp_path, _sac(env, seed=5), env, seed=0)
        step, run_state = checkpoint.restore()
        restored = checkpoint.model
        env.close()
    assert (step, run_state) == (48, {"note": "kept"})
    assert _equal(restored.get_parameters(), trained.get_parameters())  # networks and every optimizer's state
    assert torch.equal(restored.log_ent_coef, trained.log_ent_coef)
    assert (restored.num_timesteps, restored._n_updates, restored._episode_num) == \
        (trained.num_timesteps, trained._n_updates, trained._episode_num) == (48, 32, trained._episode_num)
    assert restored.replay_buffer.size() == trained.replay_buffer.size() == 48
    assert type(restored.critic.optimizer) is optimizers.recipe_class("stable_spam")
    # the temperature's Adam still updates the restored log_ent_coef tensor
    assert restored.ent_coef_optimizer.param_groups[0]["params"][0] is restored.log_ent_coef
