"""Resume through SB3's public save/load: fails loudly when an SB3 upgrade changes what a checkpoint restores."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
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
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        assert np.array_equal(getattr(restored.replay_buffer, name), getattr(trained.replay_buffer, name)), name
    assert (restored.replay_buffer.pos, restored.replay_buffer.full) == (48, False)
    assert not list(tmp_path.glob("*.pkl"))  # the buffer is stored as arrays, never pickled
    assert type(restored.critic.optimizer) is optimizers.recipe_class("stable_spam")
    # the temperature's Adam still updates the restored log_ent_coef tensor
    assert restored.ent_coef_optimizer.param_groups[0]["params"][0] is restored.log_ent_coef


class _Planted:
    """Unpickling this creates ``marker``: proof that a pickle from the checkpoint folder was executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.mark.parametrize("where", ["escaping_name", "legacy_pickle_name", "pickle_under_the_right_name"])
def test_a_planted_pickle_is_never_unpickled_and_the_checkpoint_is_set_aside(tmp_path, where):
    folder = tmp_path / "checkpoints" / "run"
    folder.mkdir(parents=True)
    marker = tmp_path / "pwned"
    with mujoco_warnings_as_python_warnings():
        env = make_train_env("Hopper", 1, normalize=False, gamma=0.99)
        fresh = _sac(env)
        fresh.save(folder / "model_48.zip")
        replay = {"escaping_name": "../../planted.pkl", "legacy_pickle_name": "replay_48.pkl",
                  "pickle_under_the_right_name": "replay_48.npz"}[where]
        planted = (folder / replay).resolve()
        planted.write_bytes(pickle.dumps(_Planted(marker)))
        torch.save({"step": 48, "model": "model_48.zip", "replay": replay, "vec_normalize": {}, "run": {}},
                   folder / "state.pt")
        checkpoint = SB3Checkpoint(folder, fresh, env, seed=0)
        restored = checkpoint.restore()
        env.close()
    assert restored is None and checkpoint.model is fresh  # treated as absent: the run starts afresh
    assert not marker.exists()
    assert not (folder / "state.pt").exists()
    assert len(list((tmp_path / "checkpoints" / "set_aside").glob("run-*/state.pt"))) == 1
