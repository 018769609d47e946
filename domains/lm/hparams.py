"""Optimizer hyper-parameters of the language-model domains, set the way the paper set them.

At the paper's run length (20k steps) the momentum-reset intervals are the paper's; shorter runs keep the same
fraction of the run (``reset_interval = max(25, 1000 * steps / 20000)``; SPAM's 500-step interval and 150-step
warm-up scale the same way). Stable-SPAM's gammas depend on the precision (4-bit: 0.7 / 0.9; 16-bit:
0.85 / 0.99999), ``total_T`` is the run length (SPEC §1.1 item 6), and the Lion family takes a ~5x smaller LR.
"""

from __future__ import annotations

PAPER_STEPS = 20_000  # the run length the paper's reset intervals belong to

_LR_MULTIPLIER = {"lion": 0.2, "lion_stable": 0.2}


def lr_multiplier(recipe: str) -> float:
    """How a recipe's peak LR relates to Adam's at the same size (0.2 for the Lion family, else 1)."""
    return _LR_MULTIPLIER.get(recipe.split(":")[0], 1.0)


def stability_hparams(recipe: str, low_bit: bool, steps: int) -> dict:
    """The Stable-SPAM / SPAM settings of ``recipe`` for a run of ``steps`` at low (4-bit and below) or 16-bit
    precision: gammas, reset interval, ``total_T``, SPAM's warm-up; ``{}`` for a recipe with none of them."""
    hparams: dict = {}
    if _has(recipe, "adagn"):
        gamma1, gamma2 = (0.7, 0.9) if low_bit else (0.85, 0.99999)
        hparams.update(gamma1=gamma1, gamma2=gamma2)
    if _has(recipe, "adaclip"):
        hparams["gamma3"] = 0.999
    if _has(recipe, "moret"):
        hparams["reset_interval"] = scaled_interval(1000, steps)
    if recipe.startswith("stable_spam"):
        hparams["total_T"] = steps  # the authors pass the run length (SPEC §1.1 item 6)
    if recipe == "spam":
        interval = scaled_interval(500, steps)
        hparams.update(reset_interval=interval, warmup=max(1, round(interval * 150 / 500)))
    return hparams


def scaled_interval(paper_interval: int, steps: int) -> int:
    """The paper's interval at 20k steps, or the same fraction of a shorter run (at least 25 steps)."""
    if steps >= PAPER_STEPS:
        return paper_interval
    return max(25, round(paper_interval * steps / PAPER_STEPS))


def _has(recipe: str, component: str) -> bool:
    """Whether a recipe contains a Stable-SPAM component (``adagn``, ``adaclip`` or ``moret``)."""
    full = {"stable_spam", "stable_spam_ref"}
    stable_wrappers = {"lion_stable", "adam_mini_stable"}  # AdaClip + AdaGN, no reset (SPEC §1.3)
    if recipe in full:
        return True
    if recipe in stable_wrappers:
        return component in ("adagn", "adaclip")
    return component in recipe.split("+")[1:]
