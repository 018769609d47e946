"""The noisy quadratic model: the smallest complete domain, and the worked example of adding one.

What is trained: a single vector ``x`` (an ``nn.Module`` with one parameter) on the ill-conditioned quadratic

    f(x) = 0.5 * sum_i h_i * x_i**2,      h_i log-spaced from 1/condition_number to 1,

whose minimum is ``f(0) = 0``. Each step sees a *stochastic* gradient ``h * x + xi``, where the noise ``xi`` is
heavy-tailed and occasionally spikes — the kind of gradient the Stable-SPAM paper worries about:

    xi_i = noise_scale * sqrt(h_i) * t_i,     t_i ~ Student-t(noise_df)        (curvature-shaped, as in the NQM)
    xi  *= spike_scale                        with probability spike_prob       (a gradient spike)

The loss handed to the trainer has the *value* of the noiseless f(x) (so divergence detection compares true
losses) but the *gradient* ``h * x + xi`` (the noise enters through a term that is zero in value). The
headline metric ``final_loss`` is the exact noiseless f(x) after training (lower is better).

To add your own domain, copy this file's shape (README, "Adding a domain", walks through it):

1. a ``Config`` dataclass whose fields all have defaults, and ``presets`` overriding them for
   ``smoke`` / ``quick`` / ``cpu`` / ``paper``; ``steps`` is the run length (``Domain.budget_field``);
2. ``validate(config)`` with :func:`domains.fields.check` (one message format for every domain);
3. ``run_profile(config)`` -- what the run is, for the engine's hyper-parameter policy: its optimizer steps (by
   default the budget field), precision class, model shape, and a peak LR that works for Adam; the engine derives
   every recipe's hyper-parameters from it (reset intervals scaled to the run, the Lion LR, ...);
4. ``studies()`` -- which recipes, LRs, config grids and seeds each named study runs;
5. ``run(config, ctx)`` -- build the model, a deterministic ``batch_at(step)``, a pure ``loss_fn`` and
   ``evaluate(model, step)``, then hand everything to :func:`domains.training.train` (which builds the
   optimizer from ``ctx``, logs, detects divergence and checkpoints);
6. ``baselines(config, seed)`` -- the metric that trivial predictors reach on the run's evaluation (here the
   loss at initialisation): the regime gate, so a comparison is only graded where training got somewhere;
7. one line in ``domains/__init__.py``'s registry (or ``domains.register`` from your own code).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from domains.base import Domain, RunContext, RunProfile, StudySpec
from domains.fields import at_least, check, rule, schedule_rules, within
from domains.training import TrainLoop, train


@dataclass
class QuadraticConfig:
    """One noisy-quadratic problem and its training budget."""

    dim: int = 256  # number of coordinates
    condition_number: float = 1e3  # h_max / h_min
    noise_scale: float = 0.1  # scale of the gradient noise (relative to sqrt(h_i))
    noise_df: float = 3.0  # Student-t degrees of freedom: smaller = heavier tails
    spike_prob: float = 0.02  # probability that a step's gradient noise is a spike
    spike_scale: float = 100.0  # how much larger the noise is on a spike step
    steps: int = 500  # optimizer steps
    warmup: float = 0.05  # LR warm-up: a fraction of the steps (< 1) or a whole step count (<= steps)
    eval_every: int = 0  # evaluate f(x) every this many steps (0: only at the end)
    checkpoint_every: int = 0  # checkpoint every this many steps (0: never)


class QuadraticModel(nn.Module):
    """The point ``x`` being optimised, with the problem's curvatures as a buffer."""

    def __init__(self, curvatures: torch.Tensor, init: torch.Tensor):
        super().__init__()
        self.register_buffer("h", curvatures)
        self.x = nn.Parameter(init)

    def value(self) -> torch.Tensor:
        """The noiseless objective 0.5 * sum(h * x**2)."""
        return 0.5 * (self.h * self.x * self.x).sum()


class QuadraticDomain(Domain):
    """Noisy ill-conditioned quadratic with heavy-tailed, spiky gradient noise (metric: final f(x))."""

    name = "quadratic"
    metric = "final_loss"
    higher_is_better = False
    Config = QuadraticConfig
    presets = {
        "smoke": {"dim": 32, "steps": 200},
        "quick": {"dim": 256, "steps": 500},
        "cpu": {"dim": 1024, "steps": 2000},
        "paper": {"dim": 16384, "steps": 20000},
    }

    ADAM_LR = 3e-2  # a peak LR that works for Adam on this problem (the LR schedule is warm-up + cosine)

    def validate(self, config: QuadraticConfig) -> None:
        """Reject values that make no problem (the message names the field)."""
        check(self.name,
              at_least(1, config, "dim", "condition_number", "steps"),
              at_least(0, config, "noise_scale", "spike_scale"),
              schedule_rules(config),
              rule("noise_df", config.noise_df > 0, "must be > 0", config.noise_df),
              within(0, 1, config, "spike_prob"))

    def run_profile(self, config: QuadraticConfig) -> RunProfile:
        """``steps`` optimizer steps in fp32, no Transformer shape, Adam's peak LR."""
        return RunProfile(optimizer_steps=config.steps, base_lr=self.ADAM_LR)

    def studies(self) -> dict[str, dict[str, StudySpec]]:
        """``main`` (the paper's main comparison), ``lr_sweep`` and ``ablation`` (paper Table 4)."""
        seeds = {"smoke": 1, "quick": 3, "cpu": 5, "paper": 10}
        main = ("adam", "adam_clip", "spam", "stable_spam")
        ablation = ("adam", "adam+moret", "adam+moret+adaclip", "adam+moret+adagn", "adam+moret+adagn+adaclip",
                    "adam+moret+adagn+spikeclip", "adam+moret+gradclip+adaclip")
        lrs = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0)  # the top end diverges
        return {
            "main": {p: StudySpec(recipes=main, seeds=n) for p, n in seeds.items()},
            "lr_sweep": {p: StudySpec(recipes=("adam", "stable_spam"), lrs=lrs, seeds=n) for p, n in seeds.items()},
            "ablation": {p: StudySpec(recipes=ablation, seeds=n) for p, n in seeds.items()},
        }

    def baselines(self, config: QuadraticConfig, seed: int) -> dict[str, float]:
        """``initial``: f(x) at the seed's starting point, evaluated as the final metric is (gates the regime)."""
        return {"initial": float(initial_model(config, seed).value().detach())}

    def run(self, config: QuadraticConfig, ctx: RunContext) -> dict[str, float]:
        """Train x from a seeded random start through the shared trainer; return ``final_loss``."""
        model = initial_model(config, ctx.seed)
        noise_std = (config.noise_scale * hessian_diagonal(config).sqrt()).numpy()
        ctx.logger.log_info(dim=config.dim, condition_number=config.condition_number,
                            initial_loss=float(model.value().detach()))

        def batch_at(step: int) -> torch.Tensor:
            # One generator per (seed, step): the noise of a step is the same after a resume.
            rng = np.random.default_rng([ctx.seed, step])
            noise = noise_std * rng.standard_t(config.noise_df, size=config.dim)
            if rng.random() < config.spike_prob:
                noise *= config.spike_scale
            return torch.from_numpy(noise).float()

        def loss_fn(model: QuadraticModel, noise: torch.Tensor) -> torch.Tensor:
            # value: the true f(x); gradient: h*x + noise (the noise term is zero in value).
            noisy = (noise.to(model.x.device) * model.x).sum()
            return model.value() + noisy - noisy.detach()

        def evaluate(model: QuadraticModel, step: int) -> dict[str, float]:
            return {"final_loss": float(model.value()), "distance": float(model.x.norm())}

        loop = TrainLoop(steps=config.steps, warmup=config.warmup, eval_every=config.eval_every,
                         checkpoint_every=config.checkpoint_every)
        return train(model, batch_at, loss_fn, evaluate, loop, ctx)


def hessian_diagonal(config: QuadraticConfig) -> torch.Tensor:
    """The diagonal Hessian ``h``: ``dim`` values log-spaced from 1/condition_number to 1 (float64)."""
    return torch.logspace(-math.log10(config.condition_number), 0.0, config.dim, dtype=torch.float64)


def initial_model(config: QuadraticConfig, seed: int) -> QuadraticModel:
    """The model at its seeded starting point ``x ~ N(0, I)`` (the same for the same seed)."""
    init = torch.randn(config.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return QuadraticModel(hessian_diagonal(config).float(), init.float())
