"""The ``mujoco`` domain: reinforcement learning on gymnasium's MuJoCo v5 tasks with stable-baselines3.

SB3 owns the training loop, so this domain does not use :mod:`domains.training.loop`; it plugs into SB3 instead:

* the recipe under test, ``optimizers.recipe_class(ctx.recipe)`` with ``ctx.hparams``, replaces Adam in
  every network (PPO's actor-critic; SAC's and TD3's actor and critics) through ``policy_kwargs``;
  ``lr`` becomes the algorithm's constant ``learning_rate``. SAC's scalar entropy temperature keeps the
  Adam that SB3 builds for it separately (``ent_coef_optimizer``): it is one scalar, not a network.
* telemetry and divergence detection run in SB3 callbacks (:mod:`domains.mujoco.callbacks`);
* evaluation (:mod:`domains.mujoco.envs`): separate environments, deterministic policy, the same seeded
  start states at every evaluation; at step 0, every ``eval_every`` environment steps with
  ``curve_episodes`` episodes, and at the end with ``eval_episodes`` episodes (the reported
  ``eval_return`` = the paper's final "test reward");
* checkpoints (:mod:`domains.mujoco.checkpoint`): every ``checkpoint_every`` environment steps (at the start of
  the first rollout past each multiple) into ``ctx.workdir``, from which a killed run resumes (reproducibly
  from the checkpoint, not identically to an uninterrupted run).

Presets: ``smoke``/``quick``/``cpu`` run PPO (about 390 environment steps/s on a 2-core CPU, against
about 30 for SAC) with the RL Zoo's MuJoCo settings; ``paper`` runs SAC for 1M steps with the zoo/SB3
defaults. Every run logs ``algo``, ``env`` and ``budget`` so that tables name them. Two consequences of
keeping the zoo's PPO settings: observations are normalised (VecNormalize; evaluation applies the training
statistics, frozen), and PPO clips the global gradient norm at ``max_grad_norm`` = 0.5 *before* the
optimizer's step, so under PPO the recipe sees clipped gradients (its ``grad_norm_before`` is <= 0.5);
``--set mujoco.max_grad_norm=1e9`` turns that off. SAC and TD3 do not clip.

Optimizer hyper-parameters come from the engine's policy like every domain's; the run counts in gradient updates
(:meth:`MujocoDomain.run_profile`), so reset intervals are 1/20 (Stable-SPAM) and 1/40 (SPAM) of the updates and
``total_T`` (the cosine decay of beta1/gamma1) spans them, as in the authors' LLM runs (they published no RL code).

Seeds: SB3's ``seed`` = the run's seed (python, numpy -- replay sampling, TD3's action noise --, torch,
training environments seed .. seed + n_envs - 1); evaluation episodes are reset with their own seeds
(:func:`domains.mujoco.envs.eval_seed`), the same at every evaluation of a run.

Divergence: a non-finite loss, network parameter or evaluation return. There is no "loss grew k-fold"
rule: RL critic losses grow legitimately as returns grow.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator, Literal

import numpy as np
import torch

import optimizers
from domains.base import Diverged, Domain, RunContext, RunProfile
from domains.checkpoints import Cadence
from domains.fields import at_least, check, rule, rule_if_set
from domains.mujoco.algos import LOSS_KEYS, build_model, gradient_updates, network_optimizers, resolve_settings
from domains.mujoco.baselines import random_policy_returns, untrained_policy_returns
from domains.mujoco.callbacks import EvaluationSchedule, Telemetry
from domains.mujoco.checkpoint import Checkpointer, SB3Checkpoint
from domains.mujoco.envs import (
    Evaluator,
    eval_seed,
    frozen_observation_normalizer,
    make_train_env,
    mujoco_warnings_as_python_warnings,
)

ADAM_LR = 3e-4  # SB3's and the zoo's learning rate for PPO, SAC and TD3 on MuJoCo
PPO_ADAM_EPS = 1e-5  # SB3's PPO builds its Adam with eps 1e-5 (from OpenAI baselines)


@dataclass
class MujocoConfig:
    """One RL run. Algorithm hyper-parameters left at None take the algorithm's RL Zoo default
    (:data:`domains.mujoco.algos.ALGO_DEFAULTS`); those of another algorithm than ``algo`` are ignored.
    The resolved values are logged with the run (``log_info(algo_settings=...)``)."""

    env: Literal["HalfCheetah", "Ant", "Hopper", "Walker2d"] = "HalfCheetah"
    algo: Literal["SAC", "TD3", "PPO"] = "SAC"
    steps: int = 1_000_000  # environment steps (PPO rounds up to whole rollouts)
    eval_every: int = 10_000  # environment steps between evaluations on the curve; 0: start and end only
    eval_episodes: int = 10  # episodes of the final evaluation
    curve_episodes: int = 5  # episodes of each evaluation on the curve
    log_every: int = 1  # gradient updates (at least) per telemetry record
    n_envs: int = 1  # training environments, stepped in this process
    torch_threads: int = 1  # torch intra-op threads during the run (0: leave as is); see _torch_threads
    checkpoint_every: int = 20_000  # environment steps between checkpoints (0: none); ~10 min of SAC on a CPU
    # shared
    gamma: float | None = None
    batch_size: int | None = None
    normalize: bool | None = None  # VecNormalize observations and rewards (zoo: PPO only)
    ent_coef: float | None = None  # PPO entropy bonus; SAC fixed temperature (None: learned, "auto")
    # PPO
    n_steps: int | None = None
    n_epochs: int | None = None
    gae_lambda: float | None = None
    clip_range: float | None = None
    vf_coef: float | None = None
    max_grad_norm: float | None = None  # PPO clips the global gradient norm before optimizer.step()
    # SAC / TD3
    buffer_size: int | None = None
    learning_starts: int | None = None
    tau: float | None = None
    train_freq: int | None = None
    gradient_steps: int | None = None
    action_noise_std: float | None = None  # TD3 Gaussian exploration noise


_PPO_PRESET = dict(algo="PPO", curve_episodes=5, eval_episodes=10)

PRESETS: dict[str, dict[str, Any]] = {
    # seconds per run: a few tiny rollouts, no evaluation between start and end
    "smoke": dict(_PPO_PRESET, steps=1024, n_steps=512, n_epochs=2, eval_every=0, curve_episodes=2, eval_episodes=3),
    # about 30-40 s per run on 2 CPU cores: 6 rollouts of 2048 steps
    "quick": dict(_PPO_PRESET, steps=12_288, eval_every=4096),
    # The committed study, ~2 min per run on one core: 50 rollouts of 2048 steps. Calibrated (issue 13; PPO + Adam,
    # seed 0, 204,800 steps, evaluations every 51,200): HalfCheetah 742.6 / 885.9 / 1120.6 / 1272.1 against the
    # untrained policy's -0.4 (the former 32,768 steps ended near zero, -5 +- 69 over 3 seeds); Ant falls from the
    # untrained policy's 995.5 (it stands still and collects the healthy reward for all 1000 steps) to 333.2 after
    # 51,200 steps and 59.4 after 204,800: PPO first learns to move and falls, and beating standing still needs a
    # walking gait, which the paper's SAC reaches in its 1M steps (``paper`` preset), not this budget. So Ant stays in
    # the grid as the named out-of-regime cell, and 102,400 steps put HalfCheetah (and Hopper) clearly in regime.
    "cpu": dict(_PPO_PRESET, steps=102_400, eval_every=25_600),
    # the paper's scale: SAC, 1M steps, zoo/SB3 defaults; telemetry averaged over 100 updates
    "paper": dict(algo="SAC", steps=1_000_000, eval_every=10_000, curve_episodes=5, eval_episodes=10, log_every=100),
}


# Baseline returns by what they depend on (see MujocoDomain.baselines)
_UNTRAINED: dict[tuple, float] = {}
_RANDOM: dict[tuple, float] = {}


class MujocoDomain(Domain):
    """RL on MuJoCo (HalfCheetah, Ant, Hopper, Walker2d) with SB3's PPO, SAC or TD3; metric: final return."""

    name = "mujoco"
    metric = "eval_return"
    higher_is_better = True
    Config = MujocoConfig
    presets = PRESETS
    budget_unit = "environment steps"
    default_study = "rl"

    def regime_note(self, config) -> str:
        """Ant under PPO cannot beat standing still at CPU budgets; other tasks need more environment steps."""
        if config.get("env") == "Ant" and config.get("algo") == "PPO":
            return ("Ant's untrained policy stands still and collects the healthy reward for all 1000 steps; PPO at "
                    "this budget learns to move before it learns to stay up (calibration: 995.5 untrained, 59.4 "
                    "after 204,800 steps): a walking gait needs the paper's SAC at 1M steps (`--preset paper`)")
        return "more environment steps (the cpu preset's calibration is in domains/mujoco/domain.py)"

    def validate(self, config: MujocoConfig) -> None:
        """Reject what SB3 or the evaluation cannot honour: non-positive counts, negative cadences and
        coefficients, discounts and rates outside their ranges (the message names the field)."""
        check(self.name,
              at_least(1, config, "steps", "eval_episodes", "curve_episodes", "log_every", "n_envs", "batch_size",
                       "n_steps", "n_epochs", "buffer_size", "train_freq"),
              at_least(0, config, "eval_every", "learning_starts", "torch_threads", "checkpoint_every", "ent_coef",
                       "vf_coef", "action_noise_std"),
              rule_if_set(config, "gamma", lambda v: 0 < v <= 1, "must be in (0, 1]"),
              rule_if_set(config, "tau", lambda v: 0 < v <= 1, "must be in (0, 1]"),
              rule_if_set(config, "gae_lambda", lambda v: 0 <= v <= 1, "must be in [0, 1]"),
              rule_if_set(config, "clip_range", lambda v: v > 0, "must be > 0"),
              rule_if_set(config, "max_grad_norm", lambda v: v > 0, "must be > 0"),
              rule_if_set(config, "gradient_steps", lambda v: v >= 1 or v == -1,
                          "must be >= 1, or -1 (as many as environment steps collected)"),
              # SB3's PPO normalises advantages over a minibatch, which needs two samples
              rule("batch_size", config.algo != "PPO" or config.batch_size is None or config.batch_size > 1,
                   "must be > 1 for PPO", config.batch_size))

    def run_profile(self, config: MujocoConfig) -> RunProfile:
        """The run in the primary network's gradient updates (the budget is environment steps: PPO's epochs x
        minibatches per rollout, SAC/TD3's updates after ``learning_starts``), fp32 (32-bit), no Transformer shape,
        SB3's/the zoo's LR 3e-4 for Adam-like recipes; and, under PPO, SB3's Adam eps 1e-5 for Adam-like recipes
        (a setting of the workload, not of a recipe)."""
        settings = resolve_settings(config.algo, asdict(config))
        updates = gradient_updates(config.algo, settings, config.steps, config.n_envs)
        family_settings = {"adam-like": {"eps": PPO_ADAM_EPS}} if config.algo == "PPO" else {}
        return RunProfile(optimizer_steps=updates, precision_class="32-bit", base_lr=ADAM_LR, settings=family_settings)

    gate_baselines = ("untrained_policy", "random_policy")

    def baselines(self, config: MujocoConfig, seed: int) -> dict[str, float]:
        """Mean returns of the untrained and of a uniformly random policy over the run's final-evaluation
        episodes (same count, same reset seeds; :mod:`domains.mujoco.baselines`). Both gate the regime."""
        settings = resolve_settings(config.algo, asdict(config))
        untrained_key = (config.env, config.algo, tuple(sorted(settings.items())), config.n_envs,
                         config.eval_episodes, seed)
        random_key = (config.env, config.eval_episodes, seed)
        with mujoco_warnings_as_python_warnings(), _torch_threads(config.torch_threads):
            if untrained_key not in _UNTRAINED:
                _UNTRAINED[untrained_key] = float(np.mean(untrained_policy_returns(
                    config.env, config.algo, settings, config.n_envs, config.eval_episodes, seed)))
            if random_key not in _RANDOM:
                _RANDOM[random_key] = float(np.mean(random_policy_returns(config.env, config.eval_episodes, seed)))
        return {"untrained_policy": _UNTRAINED[untrained_key], "random_policy": _RANDOM[random_key]}

    def run(self, config: MujocoConfig, ctx: RunContext) -> dict[str, float]:
        """Train with SB3 and the recipe under test, evaluate, return the final metrics.

        Returns ``eval_return`` (mean over ``eval_episodes`` deterministic episodes), ``eval_return_std``,
        ``eval_auc`` (area under the evaluation curve / steps), ``env_steps_per_s`` (training only,
        evaluation excluded), the same per second of process CPU time, ``env_steps_per_cpu_s`` (steadier
        than wall time on a shared machine), and ``env_steps``. Raises Diverged on a non-finite loss,
        parameter or return, or an action distribution SB3 cannot build from the parameters.
        """
        steps = config.steps
        settings = resolve_settings(config.algo, asdict(config))
        hparams = {"lr": _recipe_default_lr(ctx.recipe), **ctx.hparams}
        ctx.logger.log_info(algo=config.algo, env=config.env, budget=steps, budget_unit=self.budget_unit,
                            algo_settings=settings, n_envs=config.n_envs, eval_every=config.eval_every,
                            eval_episodes=config.eval_episodes, optimizer_hparams=hparams)
        if config.algo == "SAC":
            ctx.logger.log_info(temperature_optimizer="torch.optim.Adam (SB3's ent_coef_optimizer, not the recipe)")
        with mujoco_warnings_as_python_warnings(), _torch_threads(config.torch_threads):
            train_env = make_train_env(config.env, config.n_envs, settings["normalize"], settings["gamma"])
            evaluator = Evaluator(config.env, max(config.eval_episodes, config.curve_episodes), eval_seed(ctx.seed))
            try:
                return _train_and_evaluate(config, settings, hparams, steps, ctx, train_env, evaluator)
            finally:
                evaluator.close()
                train_env.close()


def _train_and_evaluate(config: MujocoConfig, settings: dict, hparams: dict, steps: int, ctx: RunContext,
                        train_env, evaluator: Evaluator) -> dict[str, float]:
    """Build the SB3 model around the recipe (resuming from a checkpoint in ``ctx.workdir`` when there is
    one), learn up to ``steps`` with the callbacks, evaluate at the end."""
    optimizer_kwargs = {key: value for key, value in hparams.items() if key != "lr"}
    model = build_model(config.algo, settings, train_env, lr=hparams["lr"], seed=ctx.seed, device=ctx.device,
                        optimizer_class=optimizers.recipe_class(ctx.recipe), optimizer_kwargs=optimizer_kwargs)
    checkpoint = SB3Checkpoint(ctx.workdir, model, train_env, ctx.seed) \
        if ctx.workdir is not None and config.checkpoint_every else None
    resumed = checkpoint.restore() if checkpoint is not None else None
    if checkpoint is not None:
        model = checkpoint.model  # SB3 loads a checkpoint into a new model object
    normalize = frozen_observation_normalizer(train_env)

    def policy(observations):
        return model.predict(normalize(observations), deterministic=True)[0]

    telemetry = Telemetry(ctx.logger, network_optimizers(model), LOSS_KEYS[config.algo], config.log_every)
    schedule = EvaluationSchedule(lambda episodes: evaluator.returns(policy, episodes), ctx.logger,
                                  config.eval_every, config.curve_episodes, steps)
    before = {"seconds": 0.0, "cpu_seconds": 0.0}
    if resumed:
        step, run_state = resumed
        ctx.logger.restore(run_state["logger"])
        schedule.restore(run_state["schedule"])
        before = run_state["elapsed"]
        ctx.logger.log_info(resumed_from_step=step)
    clock, cpu_clock = time.perf_counter(), time.process_time()

    def elapsed() -> dict[str, float]:
        return {"seconds": before["seconds"] + time.perf_counter() - clock,
                "cpu_seconds": before["cpu_seconds"] + time.process_time() - cpu_clock}

    def save() -> None:
        checkpoint.save(model.num_timesteps, {"logger": ctx.logger.snapshot(), "schedule": schedule.state(),
                                              "elapsed": elapsed()})

    callbacks = [telemetry, schedule]
    if checkpoint is not None:
        callbacks.append(Checkpointer(save, Cadence(config.checkpoint_every, steps, last=model.num_timesteps)))
    with _invalid_distribution_is_divergence(lambda: model.num_timesteps):
        model.learn(total_timesteps=steps - model.num_timesteps, callback=callbacks, progress_bar=ctx.progress,
                    reset_num_timesteps=resumed is None)
        # training time = time so far minus the evaluations in it (not the final one, made after)
        spent = elapsed()
        train_seconds = spent["seconds"] - schedule.seconds
        train_cpu_seconds = spent["cpu_seconds"] - schedule.cpu_seconds
        final_mean, final_std = schedule.evaluate(model.num_timesteps, config.eval_episodes)
    if checkpoint is not None:
        checkpoint.remove()
    return {"eval_return": final_mean, "eval_return_std": final_std, "eval_auc": schedule.area_under_curve(),
            "env_steps_per_s": model.num_timesteps / train_seconds,
            "env_steps_per_cpu_s": model.num_timesteps / train_cpu_seconds, "env_steps": float(model.num_timesteps)}


@contextmanager
def _invalid_distribution_is_divergence(current_step: Callable[[], int]) -> Iterator[None]:
    """Turn torch.distributions' argument check failing inside SB3 into :class:`Diverged`.

    Parameters can blow up between two telemetry records (inside one PPO ``train()``); the first forward
    pass that builds the action distribution from them (e.g. a Normal whose scale ``exp(log_std)`` is 0
    or inf, or whose mean is NaN) raises ValueError there. That is divergence, not a crash.
    """
    try:
        yield
    except ValueError as exc:
        if not _raised_in(exc, os.path.join("torch", "distributions")):
            raise
        raise Diverged(current_step(), f"invalid action distribution: {str(exc).splitlines()[0]}") from exc


def _raised_in(exc: BaseException, path_part: str) -> bool:
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and path_part in frame.tb_frame.f_code.co_filename


def _recipe_default_lr(recipe: str) -> float:
    """The LR the optimizer core documents as the recipe's default."""
    return float(optimizers.get_recipe(recipe).defaults["lr"])


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """Run with ``threads`` torch intra-op threads (0: unchanged), restoring the previous number after.

    SB3's networks are tiny (64-256 units): a second thread gains nothing, and with more threads than
    free cores OpenMP's spinning makes each layer ~100x slower (measured: 42 us vs 6.9 ms per forward
    pass of a 17-64-64 MLP on 2 busy cores).
    """
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
