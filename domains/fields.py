"""Config fields: parsing command-line text into a field's type, and checking values with one message format.

:func:`coerce_field` turns ``--set llama.steps=12`` into ``12`` (the dataclass field's type decides);
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
import types
import typing
from dataclasses import dataclass
from typing import Any, Iterable


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
            raise ConfigError(f"{where}: field {failed.field!r} {failed.requirement} (got {failed.value!r})")


def coerce_field(config_cls: type, key: str, value: Any, where: str = "config") -> Any:
    """Convert ``value`` (often a string from the command line) to the type of dataclass field ``key``."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    if key not in fields:
        raise ConfigError(f"{where}: unknown config field {key!r} (known: {', '.join(sorted(fields))})")
    hints = typing.get_type_hints(config_cls)
    target = hints.get(key, type(value))
    if not isinstance(value, str):
        return value
    try:
        return _parse_as(target, value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: field {key!r} cannot take {value!r}: {exc}") from None


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
        number = float(text)
        if math.isnan(number):
            raise ValueError("NaN is not a valid value")
        return number
    if origin in (tuple, list):
        return tuple(_parse_as(args[0], part) for part in text.split("/")) if args else tuple(text.split("/"))
    return text
