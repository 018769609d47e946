"""stable-baselines3 callbacks that connect SB3's own training loop to the suite's RunLogger.

* :class:`Telemetry` -- one ``log_step`` record per SB3 ``train()`` call (once per gradient update for
  SAC/TD3 with ``train_freq`` 1, once per rollout for PPO), or fewer with ``log_every``: the losses SB3
  logged in its last ``train()``, the learning rate, the number of ``updates`` since the last record and
  the optimizer stats averaged over them (``reset`` is their count; the actor's under SAC/TD3 are
  prefixed ``actor_``). Raises :class:`Diverged` on a non-finite loss or parameter.
* :class:`EvaluationSchedule` -- evaluates at step 0, every ``eval_every`` environment steps and (called by
  the domain) at the end; logs ``eval_return`` / ``eval_return_std``, keeps the curve and the time spent,
  raises :class:`Diverged` on a non-finite return.

Steps are environment steps (SB3's ``num_timesteps``), the domain's budget unit.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Mapping

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from domains.base import Diverged, RunLogger
from optimizers import STAT_KEYS

_SUMMED_STATS = ("reset",)  # counted over the updates of a record; the other stats are averaged


class StatsAccumulator:
    """Adds up an optimizer's ``last_stats`` after every ``step()`` (tensor adds: no host synchronisation).

    torch runs step hooks once per *hooked* ``step`` in the call chain, so a recipe whose ``step`` calls a
    parent's (e.g. ``super().step()`` of torch.optim.Adam) fires them twice; the pre-hook counts the
    nesting depth and only the outermost post-hook counts the update.
    """

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        self.updates = 0
        self._sums: list[torch.Tensor] | None = None  # STAT_KEYS in order, summed over updates
        self._depth = 0
        optimizer.collect_stats = True
        self._hooks = [optimizer.register_step_pre_hook(self._enter), optimizer.register_step_post_hook(self._add)]

    def _enter(self, optimizer, args, kwargs) -> None:
        self._depth += 1

    def _add(self, optimizer, args, kwargs) -> None:
        self._depth -= 1
        if self._depth:
            return
        self.updates += 1
        stats = getattr(optimizer, "last_stats", None)
        if not stats:
            return
        values = [stats[key] for key in STAT_KEYS]  # 0-dim float32 tensors (the stats protocol)
        if self._sums is None:
            self._sums = [value.detach().clone() for value in values]
        else:
            torch._foreach_add_(self._sums, values)  # one op for the four sums

    def pop(self) -> dict[str, float]:
        """Stats since the last call (means; ``reset`` summed), then start over."""
        values = {}
        if self._sums is not None:
            for key, total in zip(STAT_KEYS, torch.stack(self._sums).tolist()):
                values[key] = total if key in _SUMMED_STATS else total / self.updates
        self._sums, self.updates = None, 0
        return values

    def detach(self) -> None:
        """Remove the hooks and stop the optimizer collecting stats."""
        for hook in self._hooks:
            hook.remove()
        self.optimizer.collect_stats = False


class Telemetry(BaseCallback):
    """Forwards SB3's losses and the recipe's stats to ``RunLogger.log_step``; detects divergence."""

    def __init__(self, run_logger: RunLogger, optimizers: Mapping[str, torch.optim.Optimizer],
                 loss_keys: Mapping[str, str], log_every: int = 1):
        super().__init__()
        self.run_logger = run_logger
        self.optimizers = dict(optimizers)  # telemetry prefix -> optimizer; the primary one has prefix ""
        self.loss_keys = dict(loss_keys)
        self.log_every = log_every
        self.accumulators: dict[str, StatsAccumulator] = {}

    def _on_training_start(self) -> None:
        self.accumulators = {prefix: StatsAccumulator(opt) for prefix, opt in self.optimizers.items()}

    # SB3 calls train() between two rollouts, so the start of a rollout is right after an update.
    def _on_rollout_start(self) -> None:
        self._record(force=False)

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        try:
            self._record(force=True)
        finally:
            for accumulator in self.accumulators.values():
                accumulator.detach()

    def _record(self, force: bool) -> None:
        primary = self.accumulators[""]
        if primary.updates == 0 or (not force and primary.updates < self.log_every):
            return
        step = self.num_timesteps
        record = self._losses(step)
        self._check_parameters(step)
        record["lr"] = float(primary.optimizer.param_groups[0]["lr"])
        record["updates"] = float(primary.updates)
        for prefix, accumulator in self.accumulators.items():
            record.update({prefix + key: value for key, value in accumulator.pop().items()})
        self.run_logger.log_step(step, record)

    def _losses(self, step: int) -> dict[str, float]:
        logged = self.model.logger.name_to_value
        losses = {name: float(logged[key]) for key, name in self.loss_keys.items() if key in logged}
        for name, value in losses.items():
            if not math.isfinite(value):
                raise Diverged(step, f"non-finite {name} ({value})")
        return losses

    def _check_parameters(self, step: int) -> None:
        # One fused op over every network: a tensor's norm is non-finite when an entry is (or its squares
        # overflow). Only on failure is the culprit looked for.
        if _norms_finite(list(self.optimizers.values())):
            return
        culprit = next(prefix for prefix, opt in self.optimizers.items() if not _norms_finite([opt]))
        raise Diverged(step, f"non-finite parameters in the {(culprit or 'primary_')[:-1]} network")


def _norms_finite(optimizers) -> bool:
    params = [p.detach() for optimizer in optimizers for group in optimizer.param_groups for p in group["params"]]
    return bool(torch.stack(torch._foreach_norm(params)).isfinite().all())


class EvaluationSchedule(BaseCallback):
    """Evaluates the policy at step 0 and every ``eval_every`` environment steps before ``budget``."""

    def __init__(self, evaluate_returns: Callable[[int], np.ndarray], run_logger: RunLogger,
                 eval_every: int, curve_episodes: int, budget: int):
        super().__init__()
        self.evaluate_returns = evaluate_returns  # episodes -> returns of the current policy
        self.run_logger = run_logger
        self.eval_every = eval_every
        self.curve_episodes = curve_episodes
        self.budget = budget
        self.curve: list[tuple[int, float]] = []  # (environment step, mean return)
        self.seconds = 0.0  # wall-clock time spent evaluating
        self.cpu_seconds = 0.0  # process CPU time spent evaluating
        self._next = eval_every

    def _on_training_start(self) -> None:
        if not self.curve:  # a resumed run has its curve, step 0 included
            self.evaluate(0, self.curve_episodes)

    def _on_step(self) -> bool:
        # The evaluation at the budget itself is the final one, made after the last update.
        if self.eval_every and self._next <= self.num_timesteps < self.budget:
            self.evaluate(self.num_timesteps, self.curve_episodes)
            while self._next <= self.num_timesteps:
                self._next += self.eval_every
        return True

    def evaluate(self, step: int, episodes: int) -> tuple[float, float]:
        """Mean and std of the returns of ``episodes`` seeded episodes; logged and added to the curve."""
        clock, cpu_clock = time.perf_counter(), time.process_time()
        returns = self.evaluate_returns(episodes)
        self.seconds += time.perf_counter() - clock
        self.cpu_seconds += time.process_time() - cpu_clock
        mean, std = float(np.mean(returns)), float(np.std(returns))
        if not (math.isfinite(mean) and math.isfinite(std)):
            raise Diverged(step, f"non-finite evaluation return ({mean})")
        self.run_logger.log_eval(step, {"eval_return": mean, "eval_return_std": std})
        self.curve.append((step, mean))
        return mean, std

    def state(self) -> dict:
        """What a checkpoint needs to resume the schedule (plain containers)."""
        return {"curve": [list(point) for point in self.curve], "seconds": self.seconds,
                "cpu_seconds": self.cpu_seconds, "next": self._next}

    def restore(self, state: dict) -> None:
        """Continue from a :meth:`state` (the evaluations already logged are not repeated)."""
        self.curve = [(int(step), float(mean)) for step, mean in state["curve"]]
        self.seconds, self.cpu_seconds, self._next = state["seconds"], state["cpu_seconds"], state["next"]

    def area_under_curve(self) -> float:
        """Trapezoid area under (step, mean return), divided by the steps it spans: a mean return."""
        steps, means = zip(*self.curve)
        if steps[-1] == steps[0]:
            return float(means[-1])
        return float(np.trapezoid(means, steps) / (steps[-1] - steps[0]))
