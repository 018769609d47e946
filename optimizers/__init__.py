"""Optimizer core of the Stable-SPAM benchmark suite: a standalone library (depends only on torch; Lion,
Adam-mini and Adafactor recipes import their packages when built).

    import optimizers
    opt = optimizers.build("stable_spam", model.parameters(), lr=1e-3)
    optimizers.available()              # the registered recipe names
    optimizers.recipe_class("spam")     # an Optimizer class, for APIs that take one (stable-baselines3)

Every optimizer returned by `build` is a ``torch.optim.Optimizer`` with the stats protocol
(``collect_stats``/``last_stats``, see `optimizers.base`). See README.md for the recipes.
"""
from .base import STAT_KEYS, InstrumentedOptimizer
from .chain import Chain
from .registry import COMPONENTS, FAMILIES, RECIPES, Recipe, available, build, get_recipe, recipe_class
from .spam import SPAM
from .stable_spam import StableSPAM
from .stable_spam_ref import StableSPAMRef
from .transforms import (
                         AdaClip,
                         AdaGN,
                         CosineMomentumDecay,
                         GlobalNormClip,
                         GradientTransform,
                         MomentumReset,
                         SpikeClip,
                         StepContext,
)

__all__ = [
    "build", "available", "recipe_class", "get_recipe", "Recipe", "RECIPES", "FAMILIES", "COMPONENTS",
    "StableSPAM", "StableSPAMRef", "SPAM", "Chain", "InstrumentedOptimizer", "STAT_KEYS",
    "GradientTransform", "StepContext", "AdaClip", "AdaGN", "SpikeClip", "GlobalNormClip", "MomentumReset",
    "CosineMomentumDecay",
]
