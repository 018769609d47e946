"""What the user asked for: :class:`SuiteRequest` (from flags, a suite file or code) and the parsers of the
command-line text it is written in (``--optimizers``, ``--lrs``, ``--set``).

``None`` in a request means "what each domain's study says"; :mod:`benchmarks.planning.expansion` turns a
request into run specs.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from benchmarks.errors import BadInput, short_repr

MAX_GRID = 10_000  # points of one recipe's hyper-parameter grid


@dataclass(frozen=True)
class OptimizerItem:
    """A recipe with hyper-parameter overrides, and where it came from (for error messages)."""

    name: str
    hparams: Mapping[str, Any] = field(default_factory=dict)
    origin: str = ""


@dataclass
class SuiteRequest:
    """What the user asked for; ``None`` means "what each domain's study says"."""

    preset: str = "quick"
    studies: tuple[str, ...] | None = None
    domains: tuple[str, ...] | None = None
    optimizers: tuple[OptimizerItem, ...] | None = None
    lrs: tuple[float, ...] | None = None
    seeds: int | None = None
    sets: dict[str, dict[str, tuple]] = field(default_factory=dict)  # domain -> field -> values (a grid)
    budgets: dict[str, int] = field(default_factory=dict)  # domain -> run length (absent: the preset's)
    origins: dict[str, str] = field(default_factory=dict)  # field -> where it came from ("--set", "x.toml: set")
    domain_modules: tuple[str, ...] = ()  # user domain files / modules to load before planning (--domain-module)
    out: str | None = None  # a suite file's results folder (inside the results root); --out wins

    def origin(self, name: str, flag: str) -> str:
        """Where field ``name`` came from, for error messages (``flag`` when from the command line)."""
        return self.origins.get(name, flag)

    def merged_with(self, override: "SuiteRequest", given: Iterable[str]) -> "SuiteRequest":
        """This request with the fields named in ``given`` taken from ``override`` (``sets`` merge per field)."""
        merged = SuiteRequest(**{name: getattr(self, name) for name in self.__dataclass_fields__})
        merged.origins = {k: v for k, v in self.origins.items() if k not in given}
        for name in given:
            if name == "sets":
                merged.sets = {d: dict(fields) for d, fields in self.sets.items()}
                for domain, fields in override.sets.items():
                    merged.sets.setdefault(domain, {}).update(fields)
            else:
                setattr(merged, name, getattr(override, name))
        return merged


def parse_value(text: str) -> Any:
    """A hyper-parameter value from text: int, float, bool, None, a ``a/b`` tuple, else the string."""
    text = text.strip()
    if "/" in text:
        return tuple(parse_value(part) for part in text.split("/"))
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_optimizer_item(text: str, origin: str) -> OptimizerItem:
    """``NAME`` or ``NAME:key=value:key=value`` -> OptimizerItem; BadInput naming the problem."""
    name, *pairs = [part.strip() for part in text.strip().split(":")]
    if not name:
        raise BadInput(f"{origin}: empty optimizer name in {short_repr(text)}")
    hparams = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise BadInput(f"{origin}: {short_repr(text)}: expected key=value after the optimizer name, "
                           f"got {short_repr(pair)}")
        hparams[key.strip()] = parse_value(value)
    return OptimizerItem(name, hparams, f"{origin} {text}")


def parse_optimizers(text: str) -> tuple[OptimizerItem, ...]:
    """The ``--optimizers`` list (comma-separated items)."""
    items = tuple(parse_optimizer_item(part, "--optimizers") for part in text.split(",") if part.strip())
    if not items:
        raise BadInput("--optimizers: no optimizer given")
    return items


def parse_lrs(text: str, origin: str = "--lrs") -> tuple[float, ...]:
    """The ``--lrs`` list: comma-separated positive numbers."""
    try:
        lrs = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise BadInput(f"{origin}: expected comma-separated numbers, got {short_repr(text)}") from None
    return check_lrs(lrs, origin)


def check_lrs(lrs: tuple[float, ...], origin: str) -> tuple[float, ...]:
    """``lrs`` if it is a non-empty tuple of positive finite numbers; BadInput otherwise."""
    if not lrs or any(not math.isfinite(lr) or lr <= 0 for lr in lrs):
        raise BadInput(f"{origin}: learning rates must be positive finite numbers, got {short_repr(list(lrs))}")
    return lrs


def parse_set(text: str) -> tuple[str, str, tuple[str, ...]]:
    """``domain.field=v1,v2`` -> (domain, field, values)."""
    key, sep, values = text.partition("=")
    domain, dot, name = key.strip().partition(".")
    parts = tuple(v.strip() for v in values.split(","))
    if not sep or not dot or not domain or not name or not all(parts):
        raise BadInput(f"--set {short_repr(text)}: expected DOMAIN.FIELD=VALUE[,VALUE...]")
    return domain, name, parts


def parse_sets(texts: Iterable[str]) -> dict[str, dict[str, tuple]]:
    """All ``--set`` options as domain -> field -> values."""
    sets: dict[str, dict[str, tuple]] = {}
    for text in texts:
        domain, name, values = parse_set(text)
        sets.setdefault(domain, {})[name] = values
    return sets



def expand_hparam_grid(recipe: str, hparams: Mapping[str, Any], origin: str) -> list[OptimizerItem]:
    """One item per combination of the list-valued hyper-parameters (a list is a grid; a tuple is a value).

    ``recipe`` may be a ``NAME:key=value`` item, as on the command line (a study's one-at-a-time sweep);
    its own values win over ``hparams``.
    """
    base = parse_optimizer_item(recipe, origin)
    grid_keys = [key for key, value in hparams.items() if isinstance(value, list)]
    size = math.prod(len(hparams[key]) for key in grid_keys)
    if size > MAX_GRID:
        raise BadInput(f"{origin} {recipe}: the hyper-parameter grid has {size} points, more than {MAX_GRID}")
    fixed = {key: value for key, value in hparams.items() if key not in grid_keys}
    items = []
    for combo in itertools.product(*(hparams[key] for key in grid_keys)):
        values = {**fixed, **dict(zip(grid_keys, combo)), **base.hparams}
        items.append(OptimizerItem(base.name, values, f"{origin} {recipe}"))
    return items
