"""Config fields: parsing command-line text into a field's type, and checking values with one message format.

:func:`coerce_field` turns ``--set llama.steps=12`` into ``12`` (the dataclass field's type decides) and refuses
non-finite numbers (``inf``, ``nan``: no field of any domain can honour them);
:func:`check` runs a domain's value rules and raises :class:`~domains.base.ConfigError` with one line of the
form ``<domain>: field '<name>' <requirement> (got <value>)``. The rules are built with :func:`at_least`,
:func:`one_of`, :func:`within` and :func:`rule` (any other condition, cross-field ones included)::

    check("mine",
          at_least(1, config, "dim", "steps"),
          one_of(("fp32", "bf16"), config, "precision"),
          rule("heads", config.d_model % config.heads == 0, "must divide d_model", config.heads))
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Iterable

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = 4
_SHORT.maxlevel = 2


def shown(value: Any) -> str:
    """A value as an error message shows it: its repr, shortened (never a huge value in full)."""
    text = " ".join(_SHORT.repr(value).split())
    return text if len(text) <= 100 else text[:97] + "..."


class ConfigError(ValueError):
    """A domain configuration value is unknown or invalid (message names the field)."""


@dataclass(frozen=True)
class Rule:
    """One checked condition: ``field`` holds ``value``, which ``ok`` says meets ``requirement``."""

    field: str
    ok: bool
    requirement: str  # completes "field 'x' ...", e.g. "must be >= 1"
    value: Any


def rule(field: str, ok: bool, requirement: str, value: Any) -> list[Rule]:
    """A free-form rule (e.g. a relation between fields), as a one-element list for :func:`check`."""
    return [Rule(field, bool(ok), requirement, value)]


def rule_if_set(config: Any, field: str, ok: Callable[[Any], bool], requirement: str) -> list[Rule]:
    """``ok(value)`` for a field whose None means "the default" (None passes)."""
    value = getattr(config, field)
    return rule(field, value is None or ok(value), requirement, value)


def schedule_rules(config: Any, budget_field: str = "steps") -> list[Rule]:
    """The shared trainer's schedule fields: ``eval_every`` and ``checkpoint_every`` >= 0 (0: off), and
    ``warmup`` >= 0, a fraction (< 1) of the run or a whole step count no longer than the run."""
    warmup, steps = config.warmup, getattr(config, budget_field)
    return [
        *at_least(0, config, "warmup", "eval_every", "checkpoint_every"),
        *rule("warmup", warmup < 1 or float(warmup).is_integer(), "must be a fraction < 1 or a whole step count",
              warmup),
        *rule("warmup", warmup < 1 or warmup <= steps, f"must be at most {budget_field} ({steps})", warmup),
    ]


def at_least(minimum: float, config: Any, *fields: str) -> list[Rule]:
    """``field >= minimum`` for each field (a None value, "the default", passes)."""
    return [Rule(name, getattr(config, name) is None or getattr(config, name) >= minimum, f"must be >= {minimum:g}",
                 getattr(config, name)) for name in fields]


def within(low: float, high: float, config: Any, *fields: str) -> list[Rule]:
    """``low <= field <= high`` for each field."""
    return [Rule(name, low <= getattr(config, name) <= high, f"must be in [{low:g}, {high:g}]", getattr(config, name))
            for name in fields]


def one_of(choices: Iterable, config: Any, *fields: str) -> list[Rule]:
    """``field in choices`` for each field."""
    choices = tuple(choices)
    return [Rule(name, getattr(config, name) in choices, f"must be one of {', '.join(map(str, choices))}",
                 getattr(config, name)) for name in fields]


def check(where: str, *rule_lists: list[Rule]) -> None:
    """Raise :class:`ConfigError` for the first rule that fails: ``<where>: field '<name>' <requirement> (got v)``."""
    for rules in rule_lists:
        for failed in (r for r in rules if not r.ok):
            raise ConfigError(f"{where}: field {failed.field!r} {failed.requirement} (got {shown(failed.value)})")


def coerce_field(config_cls: type, key: str, value: Any, where: str = "config") -> Any:
    """Convert ``value`` (often a string from the command line) to the type of dataclass field ``key``."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    if key not in fields:
        raise ConfigError(f"{where}: unknown config field {shown(key)} (known: {', '.join(sorted(fields))})")
    hints = typing.get_type_hints(config_cls)
    target = hints.get(key, type(value))
    if isinstance(value, str):
        try:
            value = _parse_as(target, value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: field {key!r} cannot take {shown(value)}: {exc}") from None
    if not _finite(value):
        raise ConfigError(f"{where}: field {key!r} must be a finite number (got {shown(value)})")
    return value


def _finite(value: Any) -> bool:
    """False for a float (or a tuple/list holding one) that is inf or NaN."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (tuple, list)):
        return all(_finite(item) for item in value)
    return True


def _parse_as(target: Any, text: str) -> Any:
    """``text`` parsed as type ``target`` (Optional/Union, Literal, bool, int, float, tuple/list of ``/``-parts)."""
    origin = typing.get_origin(target)
    args = [a for a in typing.get_args(target) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null") and type(None) in typing.get_args(target):
            return None
        return _parse_as(args[0], text)
    if origin is typing.Literal:
        if text not in [str(a) for a in typing.get_args(target)]:
            raise ValueError(f"expected one of {typing.get_args(target)}")
        return next(a for a in typing.get_args(target) if str(a) == text)
    if target is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if target is int:
        number = float(text)
        if not number.is_integer():
            raise ValueError("expected an integer")
        return int(number)
    if target is float:
        return float(text)
    if origin in (tuple, list):
        return tuple(_parse_as(args[0], part) for part in text.split("/")) if args else tuple(text.split("/"))
    return text
