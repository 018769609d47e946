"""The mujoco domain end to end: real MuJoCo environments, real SB3 algorithms, real optimizer recipes.

Runs are kept tiny (a few hundred environment steps, one or two evaluation episodes) so that the file
stays well under a minute; they check the plumbing and the protocol, not learning.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from stable_baselines3.common.save_util import load_from_zip_file

import domains
import optimizers
from benchmarks.protocol import studies_for
from benchmarks.protocol.hparams import default_hparams
from domains.base import ConfigError, Diverged, RunContext
from domains.mujoco.algos import build_model, gradient_updates, network_optimizers, resolve_settings
from domains.mujoco.checkpoint import SB3Checkpoint
from domains.mujoco.envs import Evaluator, MujocoWarning, make_train_env, mujoco_warnings_as_python_warnings
from tests.support.loggers import DyingLogger, Killed, ListLogger

# A few PPO rollouts of 128 steps, one epoch; evaluation at start and end only.
# PPO with 20 gradient updates (2 rollouts x 5 epochs x 2 minibatches): the fewest in which Stable-SPAM's reset
# interval (1/20 of the run) is one whole step
TINY_PPO = dict(steps=256, n_steps=128, batch_size=64, n_epochs=5, eval_every=0, eval_episodes=2, curve_episodes=1)
# SAC with 32 gradient updates (after 16 random steps) on small batches.
TINY_SAC = dict(algo="SAC", steps=48, learning_starts=16, batch_size=16, buffer_size=1000,
                eval_every=0, eval_episodes=1, curve_episodes=1)


def run_tiny(overrides: dict, recipe: str = "adam", seed: int = 0, hparams: dict | None = None, workdir=None):
    """Run the smoke preset with ``overrides``; returns (metrics, logger)."""
    domain = domains.get("mujoco")
    config = domain.config("smoke", overrides)
    logger = ListLogger()
    ctx = RunContext(recipe=recipe, hparams={**default_hparams(domain, recipe, config), **(hparams or {})},
                     seed=seed, logger=logger, workdir=workdir)
    return domain.run(config, ctx), logger


@pytest.mark.parametrize("env", ["HalfCheetah", "Ant", "Hopper"])
def test_smoke_run_on_each_paper_env_gives_finite_returns_and_no_mujoco_log(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    metrics, logger = run_tiny({**TINY_PPO, "env": env}, recipe="stable_spam", workdir=tmp_path / "work")

    for key in ("eval_return", "eval_return_std", "eval_auc", "env_steps_per_s"):
        assert math.isfinite(metrics[key]), key
    assert metrics["env_steps"] == 256
    assert [step for step, _ in logger.evals] == [0, 256]
    assert logger.evals[-1][1]["eval_return"] == metrics["eval_return"]
    assert logger.info["algo"] == "PPO" and logger.info["env"] == env and logger.info["budget"] == 256
    assert [step for step, _ in logger.steps] == [128, 256]  # one record per PPO update phase
    assert not list(tmp_path.rglob("MUJOCO_LOG.TXT"))


def test_mujoco_warnings_become_python_warnings_not_a_log_file(tmp_path, monkeypatch):
    import mujoco

    monkeypatch.chdir(tmp_path)
    before = mujoco.get_mju_user_warning()
    model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><body><joint/><geom size='.1'/></body></worldbody></mujoco>")
    data = mujoco.MjData(model)
    data.qpos[0] = float("nan")
    with pytest.warns(MujocoWarning, match="QPOS"), mujoco_warnings_as_python_warnings():
        mujoco.mj_checkPos(model, data)
    assert mujoco.get_mju_user_warning() is before
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def test_ppo_steps_the_recipe_in_its_single_network():
    _, logger = run_tiny({**TINY_PPO, "env": "Hopper"}, recipe="stable_spam")
    # 2 rollouts of 128 steps, 5 epochs of 2 minibatches each; stats only exist if the recipe stepped.
    assert [record["updates"] for _, record in logger.steps] == [10, 10]
    for _, record in logger.steps:
        assert math.isfinite(record["grad_norm_before"]) and math.isfinite(record["loss"])
        assert record["lr"] == pytest.approx(3e-4)


@pytest.fixture
def one_torch_thread():
    """One torch thread, as the domain's runs use (tiny networks; more threads only contend)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_sac_actor_and_critic_optimizers_are_the_recipe_and_the_temperature_keeps_adam(one_torch_thread):
    domain = domains.get("mujoco")
    config = domain.config("smoke", {**TINY_SAC, "env": "Hopper"})
    settings = resolve_settings("SAC", vars(config))
    recipe = optimizers.recipe_class("stable_spam")
    env = make_train_env("Hopper", 1, settings["normalize"], settings["gamma"])
    hparams = default_hparams(domain, "stable_spam", config)
    model = build_model("SAC", settings, env, lr=hparams.pop("lr"), optimizer_class=recipe,
                        optimizer_kwargs=hparams, seed=0)
    networks = network_optimizers(model)
    assert type(networks[""]) is recipe and type(networks["actor_"]) is recipe
    assert networks[""] is model.critic.optimizer and networks["actor_"] is model.actor.optimizer
    assert type(model.ent_coef_optimizer) is torch.optim.Adam

    counts = {name: 0 for name in networks}
    for name, optimizer in networks.items():
        optimizer.step = _counted(optimizer.step, counts, name)  # what SB3 calls, once per update
    critic_before = [p.detach().clone() for p in model.critic.parameters()]
    model.learn(total_timesteps=config.steps)
    env.close()
    updates = gradient_updates("SAC", settings, config.steps, 1)
    assert counts == {"": updates, "actor_": updates} and updates == 32
    assert any(not torch.equal(a, b) for a, b in zip(critic_before, model.critic.parameters()))


def _counted(step, counts: dict, name: str):
    def counted_step(*args, **kwargs):
        counts[name] += 1
        return step(*args, **kwargs)
    return counted_step


def test_sac_telemetry_reports_both_networks_and_counts_stable_spam_resets():
    domain = domains.get("mujoco")
    config = domain.config("smoke", {**TINY_SAC, "env": "Hopper"})
    reset_interval = default_hparams(domain, "stable_spam", config)["reset_interval"]
    metrics, logger = run_tiny({**TINY_SAC, "env": "Hopper"}, recipe="stable_spam")

    assert math.isfinite(metrics["eval_return"])
    assert sum(record["updates"] for _, record in logger.steps) == 32  # one record per gradient update
    last = logger.steps[-1][1]
    for key in ("loss", "actor_loss", "grad_norm_before", "grad_norm_after", "clip_fraction", "reset",
                "actor_grad_norm_before", "actor_reset", "lr"):
        assert math.isfinite(last[key]), key
    assert sum(record["reset"] for _, record in logger.steps) == 32 // reset_interval
    assert logger.info["temperature_optimizer"].startswith("torch.optim.Adam")


def test_evaluation_is_deterministic_for_a_fixed_policy_and_seed():
    torch.manual_seed(0)
    layer = torch.nn.Linear(11, 3)

    def policy(observations):
        with torch.no_grad():
            return torch.tanh(layer(torch.as_tensor(observations, dtype=torch.float32))).numpy()

    evaluator = Evaluator("Hopper", max_episodes=3, first_seed=123)
    try:
        first, second = evaluator.returns(policy, 3), evaluator.returns(policy, 3)
    finally:
        evaluator.close()
    np.testing.assert_array_equal(first, second)
    assert len(set(first.tolist())) == 3  # each episode starts from its own seeded state


def test_two_runs_with_the_same_seed_give_the_same_numbers():
    overrides = {**TINY_PPO, "env": "Hopper"}
    first, first_log = run_tiny(overrides, seed=3)
    second, second_log = run_tiny(overrides, seed=3)
    assert first["eval_return"] == second["eval_return"]
    assert first_log.evals == second_log.evals
    assert [r for _, r in first_log.steps] == [r for _, r in second_log.steps]


@pytest.mark.parametrize("tiny", [TINY_PPO, TINY_SAC], ids=["PPO", "SAC"])
def test_an_absurd_learning_rate_is_recorded_as_diverged(tiny):
    # PPO: the action distribution can no longer be built; SAC: the critic loss overflows.
    with pytest.raises(Diverged) as caught:
        run_tiny({**tiny, "env": "Hopper"}, hparams={"lr": 1e6})
    assert 0 < caught.value.step <= tiny["steps"]


def test_the_run_is_counted_in_gradient_updates_and_ppo_gives_adam_like_recipes_sb3s_eps():
    domain = domains.get("mujoco")
    quick, paper = domain.config("quick"), domain.config("paper")
    # quick: 6 rollouts of 2048 steps x 10 epochs x 2048/64 minibatches; paper: SAC, 1M steps - 10k learning_starts
    assert domain.run_profile(quick).optimizer_steps == 6 * 10 * 32 == 1920
    assert domain.run_profile(paper).optimizer_steps == 990_000
    assert default_hparams(domain, "adam", quick) == {"lr": 3e-4, "eps": 1e-5}
    assert default_hparams(domain, "adam", paper) == {"lr": 3e-4}
    stable = default_hparams(domain, "stable_spam", quick)
    assert (stable["reset_interval"], stable["total_T"], stable["eps"]) == (1920 / 20, 1920, 1e-5)
    assert default_hparams(domain, "stable_spam", paper)["reset_interval"] == 990_000 / 20
    # SB3's eps is Adam's: Lion's AdaGN eps and Adafactor's eps pair keep their own
    assert "eps" not in default_hparams(domain, "lion_stable", quick)
    assert default_hparams(domain, "adafactor", quick) == {"lr": 3e-4}


def test_presets_studies_and_config_errors():
    domain = domains.get("mujoco")
    assert domain.metric == "eval_return" and domain.higher_is_better and domain.default_study == "rl"
    assert {name: domain.config(name).algo for name in ("smoke", "quick", "cpu", "paper")} == \
        {"smoke": "PPO", "quick": "PPO", "cpu": "PPO", "paper": "SAC"}
    assert domain.config("paper").steps == 1_000_000 and domain.config("cpu").eval_episodes >= 10
    rl = studies_for(domain)["rl"]
    assert rl["cpu"].recipes == ("adam", "stable_spam") and rl["cpu"].seeds == 3 and rl["paper"].seeds == 5
    assert rl["cpu"].grid["env"] == ("HalfCheetah", "Ant", "Hopper") and studies_for(domain)["main"] == rl
    assert rl["cpu"].grid["max_grad_norm"] == (0.5, 1e9) and "max_grad_norm" not in rl["paper"].grid
    with pytest.raises(ConfigError, match="env"):
        domain.config("smoke", {"env": "Humanoid"})
    with pytest.raises(ConfigError, match="eval_episodes"):
        domain.config("smoke", {"eval_episodes": "0"})


@pytest.mark.parametrize("tiny, die_at", [(TINY_PPO, 256), (TINY_SAC, 40)], ids=["PPO", "SAC"])
def test_a_killed_run_resumes_from_its_last_checkpoint(tiny, die_at, tmp_path):
    """With a checkpoint at every rollout start (``checkpoint_every`` 1), a run killed at ``die_at`` resumes from
    the step before: the records logged up to the checkpoint are kept (equal to an uninterrupted run's), the
    evaluation at step 0 is not repeated, the run ends at its budget and the checkpoint files are removed."""
    overrides = {**tiny, "env": "Hopper", "checkpoint_every": 1}
    straight, straight_log = run_tiny(overrides, recipe="stable_spam", seed=1)
    with pytest.raises(Killed):
        domain = domains.get("mujoco")
        config = domain.config("smoke", overrides)
        ctx = RunContext(recipe="stable_spam", hparams=default_hparams(domain, "stable_spam", config), seed=1,
                         logger=DyingLogger(die_at), workdir=tmp_path)
        domain.run(config, ctx)
    saved = torch.load(tmp_path / "state.pt", weights_only=True)
    kept = [step for step, _ in saved["run"]["logger"]["steps"]]
    assert saved["step"] < die_at and kept and kept[-1] <= saved["step"]
    # the recipe's own step counter went through the checkpoint: it equals the updates logged so far
    _, params, _ = load_from_zip_file(tmp_path / saved["model"], load_data=False)
    primary = "policy.optimizer" if tiny is TINY_PPO else "critic.optimizer"
    assert params[primary]["counters"]["step"] == sum(r["updates"] for _, r in saved["run"]["logger"]["steps"])
    assert saved["model"] == f"model_{saved['step']}.zip"
    if tiny is TINY_SAC:
        assert saved["replay"] == f"replay_{saved['step']}.npz" and (tmp_path / saved["replay"]).exists()
    else:
        assert set(saved["vec_normalize"]) == {"obs_rms", "ret_rms"}  # PPO normalises observations

    resumed, resumed_log = run_tiny(overrides, recipe="stable_spam", seed=1, workdir=tmp_path)
    assert resumed_log.info["resumed_from_step"] == saved["step"]
    assert resumed["env_steps"] == straight["env_steps"] == tiny["steps"]
    assert [step for step, _ in resumed_log.evals] == [0, tiny["steps"]]
    assert resumed_log.steps[:len(kept)] == straight_log.steps[:len(kept)]
    assert resumed_log.steps[-1][0] == tiny["steps"] and math.isfinite(resumed["eval_return"])
    assert not list(tmp_path.iterdir())  # state.pt, the model zip and the replay buffer are gone
    assert SB3Checkpoint(tmp_path, None, None, 0).restore() is None  # nothing left to resume
