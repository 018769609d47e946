"""The registered recipes: names, documented defaults, and how each is built (SPEC §1.3, §7)."""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from .chain import Chain
from .params import named, strip_names
from .spam import DEFAULTS as SPAM_DEFAULTS
from .spam import SPAM
from .stable_spam import DEFAULTS as STABLE_SPAM_DEFAULTS
from .stable_spam import StableSPAM
from .stable_spam_ref import StableSPAMRef
from .transforms import AdaClip, AdaGN, CosineMomentumDecay, GlobalNormClip, MomentumReset, SpikeClip
from .validation import EPS_PAIR, POSITIVE_LR, Rule, validate


@dataclass(frozen=True)
class Recipe:
    """One registered optimizer recipe.

    ``impl`` is the class built objects are instances of; ``init_args(params, hparams)`` returns the
    ``(args, kwargs)`` for ``impl.__init__``. ``defaults`` lists every accepted hyper-parameter with its default.
    """

    name: str
    summary: str
    reference: str
    defaults: Mapping[str, Any]
    impl: type[torch.optim.Optimizer]
    init_args: Callable[[Any, dict], tuple[tuple, dict]]
    rules: Mapping[str, Rule] = field(default_factory=dict)


ADAM = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
LION = dict(lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0)
ADAM_MINI = dict(ADAM, dim=2048, n_heads=32)
# Stable-SPAM's defaults are written once, in optimizers.stable_spam.DEFAULTS; the chains take theirs from it.
ADAGN = {k: STABLE_SPAM_DEFAULTS[k] for k in ("gamma1", "gamma2")}
ADACLIP = {"gamma3": STABLE_SPAM_DEFAULTS["gamma3"]}
STABLE = dict(ADAGN, **ADACLIP)                                  # AdaClip + AdaGN
SCHEDULE = {k: STABLE_SPAM_DEFAULTS[k] for k in ("reset_interval", "total_T", "eta_min")}  # MoRet + cosine


# --- base optimizers ---------------------------------------------------------------------------------

_FUSED_DEVICES = {"cpu", "cuda", "xpu", "mps", "hpu"}


def _fused_supported(params: list) -> bool:
    """Whether torch's fused Adam kernel takes these parameters (real floating point, supported device)."""
    tensors = [p for g in params for p in g["params"]] if isinstance(params[0], dict) else params
    return all(t.is_floating_point() and t.device.type in _FUSED_DEVICES for t in tensors)


def _adam(params, hp, cls=torch.optim.Adam):
    # fused=True: the same update in one kernel per tensor (torch's default on CPU is a slower per-op loop)
    params = strip_names(params)
    return cls(params, lr=hp["lr"], betas=hp["betas"], eps=hp["eps"], weight_decay=hp["weight_decay"],
               fused=_fused_supported(params) or None)


def _adamw(params, hp):
    return _adam(params, hp, cls=torch.optim.AdamW)


def _adafactor(params, hp):
    from transformers.optimization import Adafactor
    return Adafactor(strip_names(params), lr=hp["lr"], eps=tuple(hp["eps"]), clip_threshold=1.0, decay_rate=-0.8,
                     beta1=None, weight_decay=hp["weight_decay"], relative_step=False, scale_parameter=False,
                     warmup_init=False)


def _lion(params, hp):
    from lion_pytorch import Lion
    return Lion(strip_names(params), lr=hp["lr"], betas=hp["betas"], weight_decay=hp["weight_decay"])


def _adam_mini(params, hp):
    from adam_mini import Adam_mini
    pairs, had_names = named(params)
    if not had_names:
        warnings.warn("adam_mini got parameters without names: Adam-mini then uses one learning rate per tensor; "
                      "pass model.named_parameters() for its Transformer partition", stacklevel=4)
    return Adam_mini(pairs, lr=hp["lr"], betas=hp["betas"], eps=hp["eps"], weight_decay=hp["weight_decay"],
                     dim=hp["dim"], n_heads=hp["n_heads"], verbose=False)


# --- transforms --------------------------------------------------------------------------------------

def _adaclip(hp):
    return AdaClip(hp["gamma3"])


def _adagn(hp):
    return AdaGN(hp["gamma1"], hp["gamma2"], hp["eps"])


def _moret(hp):
    return MomentumReset(hp["reset_interval"])


def _spikeclip(hp):
    return SpikeClip(hp["threshold"], hp["reset_interval"])


def _gradclip(hp):
    return GlobalNormClip(hp["max_norm"])


def _chain(base: Callable, *transforms: Callable, cosine: bool = False):
    """``init_args`` for a `Chain` recipe: base optimizer and transforms built from the hyper-parameters.
    With ``cosine``, a `CosineMomentumDecay` goes first when ``total_T`` is set."""
    def init_args(params, hp):
        steps = [CosineMomentumDecay(hp["total_T"], hp["eta_min"])] if cosine and hp["total_T"] is not None else []
        return (base(params, hp), steps + [make(hp) for make in transforms]), {}
    return init_args


def _own_class(params, hp):
    return (strip_names(params),), dict(hp)


_STABLE_SPAM_PAPER = "Huang et al. 2025, Stable-SPAM, arXiv 2502.17055"
_ABLATION = f"{_STABLE_SPAM_PAPER}, Table 4 (ablation); base: torch.optim.AdamW (decoupled wd, default 0)"

_RECIPES = [
    Recipe("adam", "torch.optim.Adam", "Kingma & Ba 2015, arXiv 1412.6980", ADAM, Chain, _chain(_adam)),
    Recipe("adamw", "torch.optim.AdamW, weight decay 0.01", "Loshchilov & Hutter 2019, arXiv 1711.05101",
           dict(ADAM, weight_decay=0.01), Chain, _chain(_adamw)),
    Recipe("adam_clip", "Adam after global gradient-norm clipping (torch.nn.utils.clip_grad_norm_)",
           "Pascanu et al. 2013 (clipping); the paper's Adam+GradClip", dict(ADAM, max_norm=1.0), Chain,
           _chain(_adam, _gradclip)),
    Recipe("adafactor", "transformers' Adafactor: eps (1e-30, 1e-3), clip_threshold 1.0, decay_rate -0.8, "
           "no momentum, external LR", "Shazeer & Stern 2018, arXiv 1804.04235",
           dict(lr=1e-3, eps=(1e-30, 1e-3), weight_decay=0.0), Chain, _chain(_adafactor), {"eps": EPS_PAIR}),
    Recipe("lion", "lion-pytorch's Lion", "Chen et al. 2023, arXiv 2302.06675", LION, Chain, _chain(_lion),
           {"lr": POSITIVE_LR}),
    Recipe("adam_mini", "adam-mini's Adam_mini(named parameters, dim, n_heads)", "Zhang et al. 2024, "
           "arXiv 2406.16793", ADAM_MINI, Chain, _chain(_adam_mini)),
    Recipe("spam", "SPAM: momentum reset, spike-aware clipping, cosine warm-up after resets",
           "Huang et al. 2025a, SPAM, arXiv 2501.06842", SPAM_DEFAULTS, SPAM, _own_class),
    Recipe("stable_spam", "Stable-SPAM, mended (fp32 state, fresh moments on reset, own counters, resumable); "
           "fused multi-tensor step", _STABLE_SPAM_PAPER, STABLE_SPAM_DEFAULTS, StableSPAM, _own_class),
    Recipe("stable_spam_ref", "Stable-SPAM as the authors' published code behaves (quirks (a)-(e) of SPEC §1.1)",
           _STABLE_SPAM_PAPER + "; github.com/TianjinYellow/StableSPAM", STABLE_SPAM_DEFAULTS, StableSPAMRef,
           _own_class),
    Recipe("lion_stable", "AdaClip + AdaGN before Lion (no reset)", f"{_STABLE_SPAM_PAPER}, Table 3",
           dict(LION, eps=1e-8, **STABLE), Chain, _chain(_lion, _adaclip, _adagn), {"lr": POSITIVE_LR}),
    Recipe("adam_mini_stable", "AdaClip + AdaGN before Adam-mini (no reset)", f"{_STABLE_SPAM_PAPER}, Table 3",
           dict(ADAM_MINI, **STABLE), Chain, _chain(_adam_mini, _adaclip, _adagn)),
    Recipe("adam+moret", "Adam with momentum reset", _ABLATION, dict(ADAM, **SCHEDULE), Chain,
           _chain(_adamw, _moret, cosine=True)),
    Recipe("adam+moret+adaclip", "AdaClip, then Adam with momentum reset", _ABLATION,
           dict(ADAM, **ADACLIP, **SCHEDULE), Chain, _chain(_adamw, _adaclip, _moret, cosine=True)),
    Recipe("adam+moret+adagn", "AdaGN, then Adam with momentum reset", _ABLATION,
           dict(ADAM, **ADAGN, **SCHEDULE), Chain, _chain(_adamw, _adagn, _moret, cosine=True)),
    Recipe("adam+moret+adagn+adaclip", "AdaClip, AdaGN, then Adam with momentum reset: Stable-SPAM as a chain "
           "(same results as stable_spam)", _ABLATION, dict(ADAM, **STABLE, **SCHEDULE), Chain,
           _chain(_adamw, _adaclip, _adagn, _moret, cosine=True)),
    Recipe("adam+moret+adagn+spikeclip", "SPAM's spike clipping in AdaClip's place, AdaGN, then Adam with "
           "momentum reset", _ABLATION, dict(ADAM, **ADAGN, threshold=SPAM_DEFAULTS["threshold"], **SCHEDULE), Chain,
           _chain(_adamw, _spikeclip, _adagn, _moret, cosine=True)),
    Recipe("adam+moret+gradclip+adaclip", "AdaClip, global-norm clipping in AdaGN's place, then Adam with "
           "momentum reset", _ABLATION, dict(ADAM, **ADACLIP, max_norm=1.0, **SCHEDULE), Chain,
           _chain(_adamw, _adaclip, _gradclip, _moret, cosine=True)),
]
RECIPES: dict[str, Recipe] = {r.name: r for r in _RECIPES}


def available() -> list[str]:
    """Names of all registered recipes."""
    return list(RECIPES)


def get_recipe(name: str) -> Recipe:
    """The `Recipe` called ``name``; ``ValueError`` listing the available names if there is none."""
    try:
        return RECIPES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown optimizer recipe {name!r}; available: {', '.join(RECIPES)}") from None


_CLASSES: dict[str, type] = {}


def recipe_class(name: str, **fixed_hparams: Any) -> type[torch.optim.Optimizer]:
    """A ``torch.optim.Optimizer`` subclass whose ``__init__(params, lr=..., **hparams)`` builds recipe ``name``
    with ``fixed_hparams`` (overridable by the call's own) over the recipe's defaults — for APIs that take an
    optimizer class, e.g. stable-baselines3::

        policy_kwargs=dict(optimizer_class=optimizers.recipe_class("stable_spam"),
                           optimizer_kwargs=dict(gamma1=0.85, gamma2=0.99999))
    """
    recipe = get_recipe(name)
    validate(name, fixed_hparams, recipe.defaults, recipe.rules)
    if not fixed_hparams and name in _CLASSES:
        return _CLASSES[name]

    def __init__(self, params, **hparams):
        hp = validate(name, {**fixed_hparams, **hparams}, recipe.defaults, recipe.rules)
        args, kwargs = recipe.init_args(params, hp)
        recipe.impl.__init__(self, *args, **kwargs)
        self.hparams = hp

    class_name = "".join(part.capitalize() for part in re.split(r"[_+]", name)) + "Recipe"
    doc = f"Recipe ``{name}``: {recipe.summary}.\n\nReference: {recipe.reference}.\nDefaults: {dict(recipe.defaults)}"
    cls = type(class_name, (recipe.impl,), {"__init__": __init__, "__doc__": doc, "__module__": __name__,
                                             "recipe": name})
    if not fixed_hparams:
        _CLASSES[name] = cls
        globals()[class_name] = cls     # importable by name, so instances pickle
    return cls


def build(name: str, params, **hparams: Any) -> torch.optim.Optimizer:
    """Build recipe ``name`` over ``params`` (``model.parameters()``, ``model.named_parameters()`` or a list of
    param-group dicts) with ``hparams`` over its defaults. ``ValueError`` for an unknown name or hyper-parameter
    or an invalid value."""
    return recipe_class(name)(params, **hparams)
