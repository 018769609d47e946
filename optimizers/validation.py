"""Hyper-parameter validation shared by every recipe and optimizer class.

One table (`RULES`) says what each hyper-parameter name may hold; `validate` checks a mapping of
hyper-parameters against the names a recipe accepts and raises ``ValueError`` naming the parameter and its
allowed range; `validate_group` applies the same rules to one parameter group (constructor groups and
``add_param_group``), naming the group's index too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch


@dataclass(frozen=True)
class Rule:
    """What one hyper-parameter may hold: ``check(value)`` is True when valid; ``allowed`` says so in words."""

    check: Callable[[Any], bool]
    allowed: str


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _number(lo: float, hi: float = math.inf, lo_open: bool = False, hi_open: bool = True) -> Callable[[Any], bool]:
    def check(x: Any) -> bool:
        if not _is_number(x):
            return False
        above = x > lo if lo_open else x >= lo
        below = x < hi if hi_open else x <= hi
        return above and below
    return check


def _pair(check_one: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def check(x: Any) -> bool:
        return isinstance(x, (tuple, list)) and len(x) == 2 and all(check_one(v) for v in x)
    return check


_unit_half_open = _number(0.0, 1.0)                      # [0, 1)
_unit_open = _number(0.0, 1.0, lo_open=True)             # (0, 1)

RULES: dict[str, Rule] = {
    "lr": Rule(_number(0.0), "a finite number >= 0"),
    "betas": Rule(_pair(_unit_half_open), "a pair (beta1, beta2) with each in [0, 1)"),
    "eps": Rule(_number(0.0), "a finite number >= 0"),
    "weight_decay": Rule(_number(0.0), "a finite number >= 0"),
    "gamma1": Rule(_unit_open, "a number in (0, 1)"),
    "gamma2": Rule(_unit_open, "a number in (0, 1)"),
    "gamma3": Rule(_unit_open, "a number in (0, 1)"),
    "reset_interval": Rule(lambda x: _is_int(x) and x >= 0, "an integer >= 0 (0 disables momentum reset)"),
    "total_T": Rule(lambda x: x is None or (_is_int(x) and x >= 1), "None (no cosine decay) or an integer >= 1"),
    "eta_min": Rule(_number(0.0, 1.0, hi_open=False), "a number in [0, 1]"),
    "threshold": Rule(_number(0.0), "a finite number >= 0 (0 disables spike clipping)"),
    "warmup": Rule(lambda x: _is_int(x) and x >= 0, "an integer >= 0"),
    "max_norm": Rule(_number(0.0, lo_open=True), "a finite number > 0"),
    "dim": Rule(lambda x: _is_int(x) and x >= 1, "an integer >= 1"),
    "n_heads": Rule(lambda x: _is_int(x) and x >= 1, "an integer >= 1"),
}

# Recipe-specific variants of the rules above.
POSITIVE_LR = Rule(_number(0.0, lo_open=True), "a finite number > 0")
EPS_PAIR = Rule(_pair(_number(0.0)), "a pair (eps1, eps2) of finite numbers >= 0")


#: Keys of a parameter group that are not hyper-parameters: the tensors, and torch's names for them.
GROUP_PARAM_KEYS = frozenset({"params", "param_names"})


def check_tensor_lr(owner: str, lr: Any) -> None:
    """torch's rule for a Tensor ``lr`` (``ValueError("Tensor lr must be 1-element")``), then ours: the recipes
    compute with a Python float learning rate, so a 1-element Tensor is refused with a clear error too."""
    if isinstance(lr, torch.Tensor):
        if lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        raise ValueError(f"{owner}: lr as a Tensor is not supported; pass a float (lr={lr.item()!r})")


def validate(owner: str, given: Mapping[str, Any], accepted: Mapping[str, Any],
             rules: Mapping[str, Rule] | None = None) -> dict[str, Any]:
    """Check ``given`` hyper-parameters for ``owner`` (a recipe or class name) and return them merged over
    ``accepted`` (name -> default).

    Raises ``ValueError`` for a name not in ``accepted`` (listing the accepted names) and for a value outside
    its rule (naming the parameter and the allowed range). ``rules`` overrides entries of `RULES`.
    """
    check_tensor_lr(owner, given.get("lr"))
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise ValueError(
            f"{owner}: unknown hyper-parameter(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(accepted))}"
        )
    merged = {**accepted, **given}
    for name, value in merged.items():
        rule = (rules or {}).get(name) or RULES.get(name)
        if rule is not None and not rule.check(value):
            raise ValueError(f"{owner}: invalid {name}={value!r}; {name} must be {rule.allowed}")
    return merged


def validate_group(owner: str, index: int, group: Mapping[str, Any], accepted: Mapping[str, Any],
                   rules: Mapping[str, Rule] | None = None) -> None:
    """Check the hyper-parameters a parameter group sets (its keys other than `GROUP_PARAM_KEYS`) by the same
    rules as the constructor's; ``ValueError`` naming ``owner``, the group's ``index`` and the key. Complex
    parameters are refused here too (no recipe defines an update for them)."""
    where = f"{owner}: param group {index}"
    params = group.get("params", ())
    for p in [params] if isinstance(params, torch.Tensor) else params:
        p = p[1] if isinstance(p, tuple) and len(p) == 2 else p
        if isinstance(p, torch.Tensor) and p.is_complex():
            raise ValueError(f"{where}: complex parameters are not supported (got {p.dtype}); optimise "
                             "torch.view_as_real(p) instead")
    validate(where, {k: v for k, v in group.items() if k not in GROUP_PARAM_KEYS}, accepted, rules)
