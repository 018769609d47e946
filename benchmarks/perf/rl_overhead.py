"""What the ``mujoco`` adapter costs over plain stable-baselines3, in environment steps per second.

Per algorithm, two ways to train the same SB3 model (same algorithm, environment, hyper-parameters, steps
and torch thread count):

* ``plain``   -- SB3 with ``torch.optim.Adam(fused=True)`` (the kernel of the core's ``adam`` recipe) and no
  callback; ``model.learn`` timed;
* ``adapter`` -- ``domains.get("mujoco").run`` with the ``adam`` recipe from the optimizer core, the
  telemetry callback on (stats collected at every update) and the checkpoint callback watching the clock (a
  run this short never reaches a checkpoint); its ``env_steps_per_s`` excludes the time spent in
  evaluation, which plain SB3 does not do.

The two alternate in one process, ``--repeats`` times; the table gives the median steps/s of each, per
second of wall-clock time and per second of process CPU time (the steadier measure when other work
shares the cores), and the median over the (plain, adapter) pairs of the adapter's overhead (target:
under 5%). Usage::

    python -m benchmarks.perf.rl_overhead [--algos PPO,SAC] [--env HalfCheetah] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

import domains
from benchmarks.protocol.hparams import default_hparams
from domains.base import RunContext
from domains.mujoco.algos import build_model, resolve_settings
from domains.mujoco.envs import make_train_env, mujoco_warnings_as_python_warnings

# Small budgets that still contain several updates: 4 PPO rollouts; 300 SAC gradient updates.
BENCH_OVERRIDES = {
    "PPO": dict(algo="PPO", steps=4096, n_steps=1024),
    "SAC": dict(algo="SAC", steps=400, learning_starts=100),
}
_NO_EVALUATION = dict(eval_every=0, eval_episodes=1, curve_episodes=1)


class _NullLogger:
    """A RunLogger that keeps nothing (both sides then pay no storage cost)."""

    def log_step(self, step, values):
        pass

    def log_eval(self, step, values):
        pass

    def log_info(self, **info):
        pass

    def snapshot(self):
        return {}

    def restore(self, snapshot):
        pass


def plain_sb3_rates(config, seed: int) -> dict[str, float]:
    """Environment steps per wall second and per CPU second of ``model.learn`` for plain SB3 (its own
    Adam, no callback) with ``config``."""
    settings = resolve_settings(config.algo, asdict(config))
    with mujoco_warnings_as_python_warnings():
        env = make_train_env(config.env, config.n_envs, settings["normalize"], settings["gamma"])
        # SB3 adds eps=1e-5 itself for PPO when the class is exactly torch.optim.Adam, as the adapter does;
        # fused=True is the kernel the core's `adam` recipe uses, so only the adapter differs between the two
        model = build_model(config.algo, settings, env, lr=default_hparams(domains.get("mujoco"), "adam", config)["lr"],
                            optimizer_class=torch.optim.Adam, optimizer_kwargs={"fused": True}, seed=seed)
        clock, cpu_clock = time.perf_counter(), time.process_time()
        model.learn(total_timesteps=config.steps)
        seconds, cpu_seconds = time.perf_counter() - clock, time.process_time() - cpu_clock
        env.close()
    return {"wall": model.num_timesteps / seconds, "cpu": model.num_timesteps / cpu_seconds}


def adapter_rates(config, seed: int) -> dict[str, float]:
    """Environment steps per wall second and per CPU second the mujoco adapter reports (``adam`` recipe)."""
    domain = domains.get("mujoco")
    with tempfile.TemporaryDirectory() as workdir:  # as the engine runs it: with the checkpoint callback on
        ctx = RunContext(recipe="adam", hparams=default_hparams(domain, "adam", config), seed=seed,
                         logger=_NullLogger(), workdir=Path(workdir))
        metrics = domain.run(config, ctx)
    return {"wall": metrics["env_steps_per_s"], "cpu": metrics["env_steps_per_cpu_s"]}


def measure(algo: str, env: str, repeats: int) -> dict[str, float]:
    """Median steps/s (wall and CPU clocks) of plain SB3 and of the adapter over ``repeats`` alternating
    runs, and the median over the pairs of the adapter's overhead (pairs share the machine's load)."""
    config = domains.get("mujoco").config("quick", {**BENCH_OVERRIDES[algo], **_NO_EVALUATION, "env": env})
    pairs = []
    for repeat in range(repeats):  # ABBA order: whichever runs second in a pair finds warmer caches
        order = (plain_sb3_rates, adapter_rates) if repeat % 2 == 0 else (adapter_rates, plain_sb3_rates)
        rates = {measure_rates: measure_rates(config, seed=repeat) for measure_rates in order}
        pairs.append((rates[plain_sb3_rates], rates[adapter_rates]))
    row: dict[str, float] = {"steps": config.steps}
    for clock in ("wall", "cpu"):
        row[f"plain_{clock}"] = statistics.median(plain[clock] for plain, _ in pairs)
        row[f"adapter_{clock}"] = statistics.median(adapter[clock] for _, adapter in pairs)
        row[f"overhead_{clock}"] = statistics.median(plain[clock] / adapter[clock] - 1.0 for plain, adapter in pairs)
    return row


def markdown_table(env: str, repeats: int, rows: dict[str, dict[str, float]]) -> str:
    """The results as a Markdown table."""
    lines = [f"RL adapter overhead on {env}: medians over {repeats} alternating (plain, adapter) pairs, torch threads "
             f"{torch.get_num_threads()}, recipe `adam` with telemetry vs SB3's own torch.optim.Adam. Steps/s per "
             "second of wall-clock time and per second of process CPU time (steadier on a shared machine).", "",
             "| algorithm | env steps | plain SB3 steps/s (wall) | adapter steps/s (wall) | overhead (wall) "
             "| plain SB3 steps/cpu-s | adapter steps/cpu-s | overhead (CPU) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for algo, row in rows.items():
        lines.append(f"| {algo} | {row['steps']} | {row['plain_wall']:.1f} | {row['adapter_wall']:.1f} "
                     f"| {100 * row['overhead_wall']:+.1f}% | {row['plain_cpu']:.1f} | {row['adapter_cpu']:.1f} "
                     f"| {100 * row['overhead_cpu']:+.1f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Measure and print the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", default="PPO,SAC", help="comma-separated, from PPO,SAC (default: both)")
    parser.add_argument("--env", default="HalfCheetah", help="HalfCheetah, Ant, Hopper or Walker2d")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    algos = [name.strip() for name in args.algos.split(",") if name.strip()]
    unknown = [name for name in algos if name not in BENCH_OVERRIDES]
    if unknown:
        parser.error(f"unknown algorithm {unknown[0]!r} (choose from {', '.join(BENCH_OVERRIDES)})")
    # Both sides run with the adapter's thread setting (1 by default), set once for the process.
    threads = domains.get("mujoco").config("quick").torch_threads
    if threads:
        torch.set_num_threads(threads)
    rows = {algo: measure(algo, args.env, args.repeats) for algo in algos}
    print(markdown_table(args.env, args.repeats, rows))


if __name__ == "__main__":
    main()
