"""The registered recipes: names, documented defaults, and how each is built (SPEC §1.3, §7)."""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import torch

from .chain import Chain
from .params import is_named, named, torch_params
from .spam import DEFAULTS as SPAM_DEFAULTS
from .spam import SPAM
from .stable_spam import DEFAULTS as STABLE_SPAM_DEFAULTS
from .stable_spam import StableSPAM
from .stable_spam_ref import StableSPAMRef
from .transforms import AdaClip, AdaGN, CosineMomentumDecay, GlobalNormClip, MomentumReset, SpikeClip
from .validation import EPS_PAIR, POSITIVE_LR, Rule, validate, validate_group


@dataclass(frozen=True)
class Recipe:
    """One registered optimizer recipe.

    ``impl`` is the class built objects are instances of; ``init_args(params, hparams)`` returns the
    ``(args, kwargs)`` for ``impl.__init__``. ``defaults`` lists every accepted hyper-parameter with its default.
    ``prepare_group(optimizer, group)``, for `Chain` recipes, turns a validated ``add_param_group`` group into
    the group(s) the base optimizer takes. ``family`` (one of :data:`FAMILIES`) and ``components`` (names from
    :data:`COMPONENTS`, in the order they act) say what the recipe is made of, so that code choosing
    hyper-parameters (a benchmark's policy) decides from data, never from the recipe's name.
    """

    name: str
    summary: str
    reference: str
    defaults: Mapping[str, Any]
    impl: type[torch.optim.Optimizer]
    init_args: Callable[[Any, dict], tuple[tuple, dict]]
    rules: Mapping[str, Rule] = field(default_factory=dict)
    prepare_group: Callable[[torch.optim.Optimizer, dict], list[dict]] | None = None
    family: str = ""
    components: tuple[str, ...] = ()


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
_FUSED_DTYPES = {torch.float16, torch.bfloat16, torch.float32, torch.float64}


def _tensors(params) -> list[torch.Tensor]:
    params = [params] if isinstance(params, torch.Tensor) else params
    return [p[1] if is_named(p) else p for p in params]


def fused_safe(params) -> bool:
    """Whether torch's fused Adam kernel may update these tensors: dense, contiguous, of a floating dtype and on
    a device it supports. (On a non-contiguous tensor torch 2.13's fused CPU kernel writes outside the tensor.)"""
    return all(t.layout == torch.strided and t.is_contiguous() and t.dtype in _FUSED_DTYPES
               and t.device.type in _FUSED_DEVICES for t in _tensors(params))


def _with_fused_flag(group: dict) -> dict:
    params = group["params"]
    params = [params] if isinstance(params, torch.Tensor) else list(params)
    return {**group, "params": params, "fused": fused_safe(params)}


def _adam(params, hp, cls=torch.optim.Adam):
    # Fused: the same update in one kernel per tensor (torch's default on CPU is a slower per-op loop), chosen
    # per group and only for the tensors the kernel handles correctly.
    params = torch_params(params)
    groups = params if isinstance(params[0], dict) else [{"params": params}]
    return cls([_with_fused_flag(g) for g in groups], lr=hp["lr"], betas=hp["betas"], eps=hp["eps"],
               weight_decay=hp["weight_decay"])


def _adam_group(optimizer, group: dict) -> list[dict]:
    return [_with_fused_flag(group)]


def _adamw(params, hp):
    return _adam(params, hp, cls=torch.optim.AdamW)


def _adafactor(params, hp):
    from transformers.optimization import Adafactor
    return Adafactor(torch_params(params), lr=hp["lr"], eps=tuple(hp["eps"]), clip_threshold=1.0, decay_rate=-0.8,
                     beta1=None, weight_decay=hp["weight_decay"], relative_step=False, scale_parameter=False,
                     warmup_init=False)


def _lion(params, hp):
    from lion_pytorch import Lion
    return Lion(torch_params(params), lr=hp["lr"], betas=hp["betas"], weight_decay=hp["weight_decay"])


def _adam_mini(params, hp):
    from adam_mini import Adam_mini
    items = torch_params(params)
    groups = items if isinstance(items[0], dict) else [{"params": items}]
    first = groups[0]["params"]
    pairs, had_names = named([first] if isinstance(first, torch.Tensor) else first)
    if not had_names:
        warnings.warn("adam_mini got parameters without names: Adam-mini then uses one learning rate per tensor; "
                      "pass model.named_parameters() for its Transformer partition", stacklevel=4)
    if len({_has_names(g) for g in groups}) > 1:
        raise ValueError(GROUP_NAMES_MIXED)
    pairs = _unique(pairs)
    trainable = [(n, p) for n, p in pairs if p.requires_grad]
    if not trainable:
        raise ValueError("adam_mini: no parameter requires grad (Adam-mini builds its partition from those)")
    opt = Adam_mini(trainable, lr=hp["lr"], betas=hp["betas"], eps=hp["eps"],
                    weight_decay=hp["weight_decay"], dim=hp["dim"], n_heads=hp["n_heads"], verbose=False)
    frozen = [pair for pair in pairs if not pair[1].requires_grad]   # Adam-mini drops these; torch keeps them
    if frozen:
        groups.insert(1, {**groups[0], "params": frozen})
    settings = _adam_mini_settings(groups[0])
    for group in opt.param_groups:
        group.update({k: v for k, v in settings.items() if k != "weight_decay"})
        if "weight_decay" in settings and not _no_decay(group["name"]):
            group["weight_decay"] = settings["weight_decay"]
    for group in groups[1:]:
        for split in _adam_mini_groups(group, len(opt.param_groups), hp["weight_decay"]):
            opt.add_param_group(split)
    return opt


GROUP_NAMES_MIXED = ("all optimizer param groups should be with/without names. cannot add param group with names "
                     "to the optimizer")


def _has_names(group: dict) -> bool:
    params = group["params"]
    return not isinstance(params, torch.Tensor) and any(is_named(p) for p in params)


def _unique(pairs: list) -> list:
    """Adam-mini makes one group per tensor, so a repeated tensor would be an error there; torch only warns."""
    seen, unique = set(), []
    for name, p in pairs:
        if p not in seen:
            seen.add(p)
            unique.append((name, p))
    if len(unique) != len(pairs):
        warnings.warn("optimizer contains a parameter group with duplicate parameters; the repeats are dropped",
                      stacklevel=5)
    return unique


_NO_DECAY = ("norm", "ln", "bias")   # Adam-mini's own rule for which tensors get no weight decay


def _no_decay(name: str) -> bool:
    return any(k in name for k in _NO_DECAY)


def _adam_mini_settings(group: dict) -> dict:
    """A recipe group's hyper-parameters under Adam-mini's names (``betas`` -> ``beta1``, ``beta2``)."""
    settings = {k: v for k, v in group.items() if k in ("lr", "eps", "weight_decay")}
    if "betas" in group:
        settings["beta1"], settings["beta2"] = group["betas"]
    return settings


def _adam_mini_groups(group: dict, first: int, weight_decay: float) -> list[dict]:
    """Adam-mini keeps one named tensor per group with keys ``beta1``/``beta2``/``name``: split a recipe group
    (``lr, betas, eps, weight_decay``; named or unnamed tensors) into such groups; unnamed tensors are called
    ``param_<index>``."""
    params = group["params"]
    params = [params] if isinstance(params, torch.Tensor) else list(params)
    settings = _adam_mini_settings(group)
    decay = settings.pop("weight_decay", weight_decay)
    groups = []
    for i, p in enumerate(params):
        name, tensor = (p[0].lower(), p[1]) if is_named(p) else (f"param_{first + i}", p)
        groups.append({**settings, "params": [tensor], "name": name, "weight_decay": 0.0 if _no_decay(name) else decay})
    return groups


def _adam_mini_group(optimizer, group: dict) -> list[dict]:
    return _adam_mini_groups(group, sum(len(g["params"]) for g in optimizer.param_groups),
                             optimizer.hparams["weight_decay"])


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
    return (torch_params(params),), dict(hp)


_STABLE_SPAM_PAPER = "Huang et al. 2025, Stable-SPAM, arXiv 2502.17055"
_ABLATION = f"{_STABLE_SPAM_PAPER}, Table 4 (ablation); base: torch.optim.AdamW (decoupled wd, default 0)"

_RECIPES = [
    Recipe("adam", "torch.optim.Adam", "Kingma & Ba 2015, arXiv 1412.6980", ADAM, Chain, _chain(_adam),
           prepare_group=_adam_group),
    Recipe("adamw", "torch.optim.AdamW, weight decay 0.01", "Loshchilov & Hutter 2019, arXiv 1711.05101",
           dict(ADAM, weight_decay=0.01), Chain, _chain(_adamw), prepare_group=_adam_group),
    Recipe("adam_clip", "Adam after global gradient-norm clipping (torch.nn.utils.clip_grad_norm_)",
           "Pascanu et al. 2013 (clipping); the paper's Adam+GradClip", dict(ADAM, max_norm=1.0), Chain,
           _chain(_adam, _gradclip), prepare_group=_adam_group),
    Recipe("adafactor", "transformers' Adafactor: eps (1e-30, 1e-3), clip_threshold 1.0, decay_rate -0.8, "
           "no momentum, external LR", "Shazeer & Stern 2018, arXiv 1804.04235",
           dict(lr=1e-3, eps=(1e-30, 1e-3), weight_decay=0.0), Chain, _chain(_adafactor), {"eps": EPS_PAIR}),
    Recipe("lion", "lion-pytorch's Lion", "Chen et al. 2023, arXiv 2302.06675", LION, Chain, _chain(_lion),
           {"lr": POSITIVE_LR}),
    Recipe("adam_mini", "adam-mini's Adam_mini(named parameters, dim, n_heads)", "Zhang et al. 2024, "
           "arXiv 2406.16793", ADAM_MINI, Chain, _chain(_adam_mini), prepare_group=_adam_mini_group),
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
           dict(ADAM_MINI, **STABLE), Chain, _chain(_adam_mini, _adaclip, _adagn),
           prepare_group=_adam_mini_group),
    Recipe("adam+moret", "Adam with momentum reset", _ABLATION, dict(ADAM, **SCHEDULE), Chain,
           _chain(_adamw, _moret, cosine=True), prepare_group=_adam_group),
    Recipe("adam+moret+adaclip", "AdaClip, then Adam with momentum reset", _ABLATION,
           dict(ADAM, **ADACLIP, **SCHEDULE), Chain, _chain(_adamw, _adaclip, _moret, cosine=True),
           prepare_group=_adam_group),
    Recipe("adam+moret+adagn", "AdaGN, then Adam with momentum reset", _ABLATION,
           dict(ADAM, **ADAGN, **SCHEDULE), Chain, _chain(_adamw, _adagn, _moret, cosine=True),
           prepare_group=_adam_group),
    Recipe("adam+moret+adagn+adaclip", "AdaClip, AdaGN, then Adam with momentum reset: Stable-SPAM as a chain "
           "(same results as stable_spam)", _ABLATION, dict(ADAM, **STABLE, **SCHEDULE), Chain,
           _chain(_adamw, _adaclip, _adagn, _moret, cosine=True), prepare_group=_adam_group),
    Recipe("adam+moret+adagn+spikeclip", "SPAM's spike clipping in AdaClip's place, AdaGN, then Adam with "
           "momentum reset", _ABLATION, dict(ADAM, **ADAGN, threshold=SPAM_DEFAULTS["threshold"], **SCHEDULE), Chain,
           _chain(_adamw, _spikeclip, _adagn, _moret, cosine=True), prepare_group=_adam_group),
    Recipe("adam+moret+gradclip+adaclip", "AdaClip, global-norm clipping in AdaGN's place, then Adam with "
           "momentum reset", _ABLATION, dict(ADAM, **ADACLIP, max_norm=1.0, **SCHEDULE), Chain,
           _chain(_adamw, _adaclip, _gradclip, _moret, cosine=True), prepare_group=_adam_group),
]


# --- what each recipe is made of ---------------------------------------------------------------------

FAMILIES = {
    "adam-like": "an Adam update (per-entry or per-block second moment) at the end",
    "sign-based": "a sign update (Lion): every entry moves by about lr per step",
    "factored": "Adafactor's factored second moment, no momentum",
}
# component -> (what it is, the hyper-parameters of it a recipe must accept)
COMPONENTS = {
    "gradclip": ("global gradient-norm clipping", ("max_norm",)),
    "adaclip": ("AdaClip: adaptive per-tensor spike clipping (Stable-SPAM)", ("gamma3",)),
    "spikeclip": ("SPAM's spike-aware clipping against Adam's second moment", ("threshold", "reset_interval")),
    "adagn": ("AdaGN: adaptive gradient-norm scaling (Stable-SPAM)", ("gamma1", "gamma2")),
    "moret": ("Stable-SPAM's momentum reset: moments and Adam's counter restart every reset_interval steps",
              ("reset_interval",)),
    "spam_reset": ("SPAM's momentum reset: moments zeroed every reset_interval steps (Adam's counter kept), then "
                   "a cosine LR warm-up over `warmup` steps", ("reset_interval", "warmup")),
    "momentum_decay": ("cosine decay of beta1 (and AdaGN's gamma1) over total_T steps, down to eta_min",
                       ("total_T", "eta_min")),
}

_STABLE_SPAM_MAKEUP = ("adam-like", ("momentum_decay", "adaclip", "adagn", "moret"))
_MAKEUP: dict[str, tuple[str, tuple[str, ...]]] = {
    "adam": ("adam-like", ()),
    "adamw": ("adam-like", ()),
    "adam_clip": ("adam-like", ("gradclip",)),
    "adafactor": ("factored", ()),
    "lion": ("sign-based", ()),
    "adam_mini": ("adam-like", ()),
    "spam": ("adam-like", ("spikeclip", "spam_reset")),
    "stable_spam": _STABLE_SPAM_MAKEUP,
    "stable_spam_ref": _STABLE_SPAM_MAKEUP,
    "lion_stable": ("sign-based", ("adaclip", "adagn")),
    "adam_mini_stable": ("adam-like", ("adaclip", "adagn")),
    "adam+moret": ("adam-like", ("momentum_decay", "moret")),
    "adam+moret+adaclip": ("adam-like", ("momentum_decay", "adaclip", "moret")),
    "adam+moret+adagn": ("adam-like", ("momentum_decay", "adagn", "moret")),
    "adam+moret+adagn+adaclip": _STABLE_SPAM_MAKEUP,
    "adam+moret+adagn+spikeclip": ("adam-like", ("momentum_decay", "spikeclip", "adagn", "moret")),
    "adam+moret+gradclip+adaclip": ("adam-like", ("momentum_decay", "adaclip", "gradclip", "moret")),
}


def _with_makeup(recipe: Recipe) -> Recipe:
    """``recipe`` with its family and components from the table above, checked against what it accepts."""
    if recipe.name not in _MAKEUP:
        raise ValueError(f"recipe {recipe.name!r}: give its family and components in optimizers.registry._MAKEUP")
    family, components = _MAKEUP[recipe.name]
    if family not in FAMILIES or not set(components) <= set(COMPONENTS):
        raise ValueError(f"recipe {recipe.name!r}: unknown family {family!r} or component in {components}")
    for component in components:
        missing = [key for key in COMPONENTS[component][1] if key not in recipe.defaults]
        if missing:
            raise ValueError(f"recipe {recipe.name!r}: component {component} needs hyper-parameters {missing}")
    return replace(recipe, family=family, components=components)


RECIPES: dict[str, Recipe] = {r.name: _with_makeup(r) for r in _RECIPES}


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
        params = _checked_params(name, recipe, params)
        self.hparams = hp
        args, kwargs = recipe.init_args(params, hp)
        recipe.impl.__init__(self, *args, **kwargs)

    class_name = "".join(part.capitalize() for part in re.split(r"[_+]", name)) + "Recipe"
    doc = f"Recipe ``{name}``: {recipe.summary}.\n\nReference: {recipe.reference}.\nDefaults: {dict(recipe.defaults)}"
    body = {"__init__": __init__, "__doc__": doc, "__module__": __name__, "recipe": name,
            "group_spec": (name, recipe.defaults, recipe.rules)}
    if recipe.prepare_group is not None:
        body["prepare_group"] = lambda self, group: recipe.prepare_group(self, group)
    cls = type(class_name, (recipe.impl,), body)
    if not fixed_hparams:
        _CLASSES[name] = cls
        globals()[class_name] = cls     # importable by name, so instances pickle
    return cls


def _checked_params(name: str, recipe: Recipe, params) -> list:
    """``params`` as a list, each parameter group checked by the constructor's rules (a plain list of tensors is
    group 0); torch's ``TypeError`` for a bare tensor."""
    params = torch_params(params)
    if isinstance(params[0], dict):     # copies with their tensors listed (a generator is read once)
        params = [{**g, "params": _listed(g.get("params", []))} if isinstance(g, dict) else g for g in params]
    groups = params if isinstance(params[0], dict) else [{"params": params}]
    for index, group in enumerate(groups):
        if isinstance(group, dict):
            validate_group(name, index, group, recipe.defaults, recipe.rules)
    return params


def _listed(params):
    return params if isinstance(params, torch.Tensor) else list(params)


def build(name: str, params, **hparams: Any) -> torch.optim.Optimizer:
    """Build recipe ``name`` over ``params`` (``model.parameters()``, ``model.named_parameters()`` or a list of
    param-group dicts) with ``hparams`` over its defaults. ``ValueError`` for an unknown name or hyper-parameter
    or an invalid value."""
    return recipe_class(name)(params, **hparams)
