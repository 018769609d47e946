"""The hyper-parameter policy: one set of rules mapping (recipe, run) to every recipe's hyper-parameters.

A domain declares its run (:meth:`domains.base.Domain.run_profile`: optimizer steps, precision class, model shape,
its tuned Adam LR, family settings); this module decides, from what the recipe is made of
(``optimizers.get_recipe(name).family`` and ``.components``) and never from its name:

* **reset intervals and SPAM's warm-up as the paper's fraction of the run.** Stable-SPAM's MoRet resets every
  1000 of the paper's 20,000 steps (1/20 of the run); SPAM resets every 500 (1/40) and warms the LR up over 150
  steps after each reset (150/20,000 of the run). The count is the fraction times the run's optimizer steps,
  rounded half up, with no floor and no cap. A run in which one of these counts would be under one whole step is
  too short for the paper's ratio: :class:`RunTooShort`, naming the minimum.
* **total_T** (the cosine momentum decay, ``momentum_decay``) = the run's optimizer steps, for every recipe that
  has it (the authors passed their run length, 20,000).
* **gamma1/gamma2** (AdaGN) by precision class: the paper's 4-bit set 0.7/0.9 for low-bit runs, its BF16 set
  0.85/0.99999 for 16-bit runs. **fp32 counts as 16-bit**: the CPU presets train in fp32 as the stand-in for the
  paper's BF16 reference (bf16 matmuls are ~15x slower than fp32 on CPU in torch). **gamma3** (AdaClip) 0.999.
* **the LR**: the domain's tuned peak LR for Adam-like recipes times the family's multiplier,
  :data:`LR_MULTIPLIERS`. Sign-based (Lion) x 1/5: Lion's authors recommend an LR 3-10x smaller than AdamW's
  (Chen et al. 2023, section 5), 5 is the middle of that range (geometric mean ~5.5), and x 0.2 is what the
  llama domain -- the only one whose studies run Lion (``integration``) -- already used, so its runs keep their
  LR (weather and quadratic used 1/3, mujoco Lion's package default 1e-4, for no stated reason). Measured on the
  llama cpu preset in INT4 (seed 0; ``python -m benchmarks.calibration probes --probe llama-lion-lr``): perplexity
  226.9 / 154.4 / 145.3 / 159.0 at LR 1e-4 / 2e-4 / 1e-3 / 2e-3 against 127.9 at the policy's 4e-4 (the
  ``integration`` run), so x 1/5 is Lion's best of the five there. Factored
  (Adafactor with an external LR) x 1: the paper swept Adafactor over Adam's LR grid.
* **Adam-mini's shape**: ``dim`` and ``n_heads`` (the hyper-parameters a recipe takes for its Transformer
  partition) from the profile's hidden size and heads.
* **the domain's family settings** (``RunProfile.settings``) where the recipe takes the key.

Recipes made of the same parts therefore get identical hyper-parameters: ``stable_spam``, ``stable_spam_ref`` and
``adam+moret+adagn+adaclip`` in every domain and preset. :func:`reset_never_fires` is the engine's warning for a
reset interval (say, a user's override) longer than the run.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Mapping

import optimizers
from domains.base import Domain, RunProfile

PAPER_STEPS = 20_000  # the run length (LLaMA pretraining) the papers' intervals belong to
# component -> hyper-parameter -> (the paper's count at PAPER_STEPS, what it is, for messages)
SCALED_COUNTS: Mapping[str, Mapping[str, tuple[int, str]]] = {
    "moret": {"reset_interval": (1000, "Stable-SPAM's momentum-reset interval")},
    "spam_reset": {"reset_interval": (500, "SPAM's momentum-reset interval"),
                   "warmup": (150, "SPAM's post-reset LR warm-up")},
}
GAMMAS = {"low-bit": (0.7, 0.9), "16-bit": (0.85, 0.99999), "32-bit": (0.85, 0.99999)}  # AdaGN (gamma1, gamma2)
GAMMA3 = 0.999  # AdaClip, at every precision
LR_MULTIPLIERS = {"adam-like": 1.0, "sign-based": 0.2, "factored": 1.0}
SHAPE_HPARAMS = ("dim", "n_heads")  # Adam-mini's Transformer partition
RESET_COMPONENTS = ("moret", "spam_reset")


class RunTooShort(ValueError):
    """A run too short for a recipe's paper ratio: one of its scaled counts would be under one step."""


class RetiredHook(TypeError):
    """A domain still defines ``default_hparams(recipe, config)``, which :meth:`Domain.run_profile` replaced."""


def policy_hparams(recipe: str, profile: RunProfile) -> dict[str, Any]:
    """The hyper-parameters of ``recipe`` (a registered name) for a run described by ``profile``.

    Only what the policy decides is set; everything else keeps the recipe's documented default. Raises
    :class:`RunTooShort` when the run has too few optimizer steps for one of the recipe's paper fractions.
    """
    made = optimizers.get_recipe(recipe)
    accepted, components = made.defaults, set(made.components)
    # 12 significant digits: 3e-4 * 0.2 is 6e-05, not 5.9999999999999995e-05, in run ids and tables
    hparams: dict[str, Any] = {"lr": float(f"{profile.base_lr * LR_MULTIPLIERS[made.family]:.12g}")}
    if "adagn" in components:
        hparams["gamma1"], hparams["gamma2"] = GAMMAS[profile.precision_class]
    if "adaclip" in components:
        hparams["gamma3"] = GAMMA3
    for component in RESET_COMPONENTS:
        if component in components:
            hparams.update(_scaled_counts(recipe, component, profile.optimizer_steps))
    if "momentum_decay" in components:
        hparams["total_T"] = profile.optimizer_steps
    shape = {"dim": profile.hidden_size, "n_heads": profile.heads}
    hparams.update({key: shape[key] for key in SHAPE_HPARAMS if key in accepted and shape[key] is not None})
    hparams.update({key: value for key, value in profile.settings.get(made.family, {}).items() if key in accepted})
    return hparams


def default_hparams(domain: Domain, recipe: str, config) -> dict[str, Any]:
    """The policy's hyper-parameters of ``recipe`` for one run of ``domain`` with ``config``.

    A domain that still defines the retired ``default_hparams(recipe, config)`` hook gets :class:`RetiredHook`
    saying what replaced it (a silently ignored hook would run with other hyper-parameters than its author meant).
    """
    if callable(getattr(domain, "default_hparams", None)):
        raise RetiredHook(f"domain {domain.name!r} defines default_hparams(recipe, config), which the engine no longer "
                        f"calls: declare run_profile(config) instead (README, 'Adding a domain')")
    return policy_hparams(recipe, domain.run_profile(config))


def minimum_steps(recipe: str) -> int:
    """The fewest optimizer steps a run of ``recipe`` needs for every paper fraction to be at least one step."""
    return max([minimum for minimum, _ in _binding_counts(recipe)], default=0)


def reset_never_fires(recipe: str, hparams: Mapping[str, Any], optimizer_steps: int) -> str | None:
    """One line when ``recipe`` resets its momentum and ``hparams``' reset interval is longer than a run of
    ``optimizer_steps`` (the reset never fires); None otherwise (no reset, resets off with 0, or it fires)."""
    if not set(optimizers.get_recipe(recipe).components) & set(RESET_COMPONENTS):
        return None
    interval = hparams.get("reset_interval", optimizers.get_recipe(recipe).defaults["reset_interval"])
    if not interval or interval <= optimizer_steps:
        return None
    return (f"{recipe}'s reset_interval {interval} is longer than the run ({optimizer_steps} optimizer steps): "
            f"its momentum reset never fires")


def _scaled_counts(recipe: str, component: str, steps: int) -> dict[str, int]:
    for minimum, (paper_count, what) in _binding_counts(recipe):
        if steps < minimum:
            raise RunTooShort(f"{recipe} needs at least {minimum} optimizer steps ({what} is {paper_count} of the "
                              f"paper's {PAPER_STEPS} steps), the run has {steps}")
    return {key: math.floor(Fraction(paper_count, PAPER_STEPS) * steps + Fraction(1, 2))
            for key, (paper_count, _) in SCALED_COUNTS[component].items()}


def _binding_counts(recipe: str) -> list[tuple[int, tuple[int, str]]]:
    """(the fewest steps in which it is one whole step, the count) for each of the recipe's scaled counts, the most
    demanding first."""
    components = optimizers.get_recipe(recipe).components
    counts = [count for component in RESET_COMPONENTS if component in components
              for count in SCALED_COUNTS[component].values()]
    return sorted(((math.ceil(Fraction(PAPER_STEPS, count[0])), count) for count in counts), reverse=True)
