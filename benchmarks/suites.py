"""Suites: what to run, expanded into run specs.

A :class:`SuiteRequest` comes from command-line flags, a suite file (:mod:`benchmarks.suite_file`) or both
(flags win). :func:`expand` turns it into run specs: for every selected domain and study, the domain's
``studies()[study][preset]`` (a :class:`domains.base.StudySpec`) gives the recipes, config grid, LRs and seed
count; the request's overrides replace them:

* ``optimizers`` replaces the study's recipes (the study's extra hyper-parameters for a recipe still apply,
  the item's own ``key=value`` pairs win);
* ``lrs`` replaces the study's LRs; an item's own ``lr=`` wins over both;
* ``seeds`` = N replaces the study's seed count (seeds 0..N-1);
* ``sets`` (``--set domain.field=v1,v2``) replaces that field's grid (one value sets it, several make a grid).

A study may run a recipe at only some grid points (``StudySpec.only``, e.g. Adam-mini at 16-bit only); recipes
given with ``optimizers`` run at every point.

A domain without the study (or without the preset in it) is skipped with a note. Every spec's
hyper-parameters are ``domain.default_hparams(recipe, config)`` (with ``steps`` set to the request's budget
for that domain, when it gives one), then the study's, then the item's.
:func:`validate_recipes` builds each distinct (recipe, hyper-parameters) on a dummy parameter so a bad name
or value fails before anything runs.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import domains
from benchmarks.errors import BadInput
from benchmarks.spec import RunSpec, canonical_json, to_jsonable, variant_label
from domains.base import PRESETS, ConfigError, Domain, StudySpec


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
    budgets: dict[str, int] = field(default_factory=dict)  # domain -> step budget (None: the config's)
    origins: dict[str, str] = field(default_factory=dict)  # field -> where it came from ("--set", "x.toml: set")

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


@dataclass
class Plan:
    """The expanded suite: unique run specs (with every study that asked for them) and notes on skips."""

    specs: list[RunSpec]
    notes: list[str]


# --- parsing command-line style text ---------------------------------------------------------------------


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
        raise BadInput(f"{origin}: empty optimizer name in {text!r}")
    hparams = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise BadInput(f"{origin}: {text!r}: expected key=value after the optimizer name, got {pair!r}")
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
        raise BadInput(f"{origin}: expected comma-separated numbers, got {text!r}") from None
    return check_lrs(lrs, origin)


def check_lrs(lrs: tuple[float, ...], origin: str) -> tuple[float, ...]:
    """``lrs`` if it is a non-empty tuple of positive finite numbers; BadInput otherwise."""
    if not lrs or any(not math.isfinite(lr) or lr <= 0 for lr in lrs):
        raise BadInput(f"{origin}: learning rates must be positive finite numbers, got {list(lrs)}")
    return lrs


def parse_set(text: str) -> tuple[str, str, tuple[str, ...]]:
    """``domain.field=v1,v2`` -> (domain, field, values)."""
    key, sep, values = text.partition("=")
    domain, dot, name = key.strip().partition(".")
    parts = tuple(v.strip() for v in values.split(","))
    if not sep or not dot or not domain or not name or not all(parts):
        raise BadInput(f"--set {text!r}: expected DOMAIN.FIELD=VALUE[,VALUE...]")
    return domain, name, parts


def parse_sets(texts: Iterable[str]) -> dict[str, dict[str, tuple]]:
    """All ``--set`` options as domain -> field -> values."""
    sets: dict[str, dict[str, tuple]] = {}
    for text in texts:
        domain, name, values = parse_set(text)
        sets.setdefault(domain, {})[name] = values
    return sets


# --- expansion -------------------------------------------------------------------------------------------


def select_domains(request: SuiteRequest, notes: list[str]) -> dict[str, Domain]:
    """name -> adapter of the selected domains (all available ones by default).

    An explicitly named domain that is unknown or cannot be imported is bad input; with the default
    selection, a domain that cannot be imported (a missing optional package) is skipped with a note.
    """
    explicit = request.domains is not None
    names = request.domains if explicit else tuple(domains.available())
    where = request.origin("domains", "--domains")
    selected = {}
    for name in names:
        try:
            selected[name] = domains.get(name)
        except ValueError as exc:
            raise BadInput(f"{where}: {exc}") from None
        except ImportError as exc:
            if explicit:
                raise BadInput(f"{where}: domain {name!r} cannot be imported: {exc}") from None
            notes.append(f"{name}: cannot be imported ({exc}), skipped")
    for name in request.sets:
        if name not in selected:
            raise BadInput(f"{request.origin('sets', '--set')} {name}: domain {name!r} is not selected "
                           f"(selected: {', '.join(selected)})")
    return selected


def expand(request: SuiteRequest) -> Plan:
    """Every run of the suite, de-duplicated by run_id; BadInput on any invalid name or value."""
    if request.preset not in PRESETS:
        raise BadInput(f"{request.origin('preset', '--preset')}: unknown preset {request.preset!r} "
                       f"(choose from {', '.join(PRESETS)})")
    if request.seeds is not None and request.seeds < 1:
        raise BadInput(f"{request.origin('seeds', '--seeds')}: must be at least 1, got {request.seeds}")
    specs: dict[str, RunSpec] = {}
    notes: list[str] = []
    for name, domain in select_domains(request, notes).items():
        for study in request.studies or (domain.default_study,):
            study_spec = domain.studies().get(study, {}).get(request.preset)
            if study_spec is None:
                notes.append(f"{name}: no study {study!r} at preset {request.preset!r}, skipped")
                continue
            for spec in _expand_study(domain, study, study_spec, request):
                known = specs.get(spec.run_id)
                specs[spec.run_id] = spec.with_studies(spec.studies + (known.studies if known else ()))
    if not specs:
        wanted = ", ".join(request.studies) if request.studies else "each domain's default study"
        raise BadInput(f"{request.origin('studies', '--study')}: nothing to run: no selected domain has {wanted} "
                       f"at preset {request.preset!r}")
    return Plan(list(specs.values()), notes)


def _expand_study(domain: Domain, study: str, study_spec: StudySpec, request: SuiteRequest) -> Iterable[RunSpec]:
    grid = {key: tuple(values) for key, values in study_spec.grid.items()}
    grid.update(request.sets.get(domain.name, {}))
    items = request.optimizers or tuple(
        item for recipe in study_spec.recipes
        for item in expand_hparam_grid(recipe, study_spec.hparams.get(recipe, {}), f"domain {domain.name} study {study}")
    )
    seeds = request.seeds or study_spec.seeds
    domain_class = f"{type(domain).__module__}:{type(domain).__qualname__}"
    for point in itertools.product(*grid.values()):
        raw = dict(zip(grid, point))
        try:
            config = domain.config(request.preset, raw)
        except ConfigError as exc:
            where = f"{request.origin('sets', '--set')}: " if domain.name in request.sets else ""
            raise BadInput(f"{where}{exc}") from None
        overrides = {key: getattr(config, key) for key in raw}
        config_json = to_jsonable(config)
        budget = request.budgets.get(domain.name)
        # a budget replaces the run's step count, so the hyper-parameters derived from it (total_T, reset
        # intervals) follow it too
        hparam_config = dataclasses.replace(config, steps=budget) if budget and hasattr(config, "steps") else config
        for item in items:
            allowed = {} if request.optimizers else study_spec.only.get(item.name, {})
            if any(getattr(config, key) not in values for key, values in allowed.items()):
                continue
            defaults = dict(domain.default_hparams(item.name, hparam_config))
            study_extra = study_spec.hparams.get(item.name, {}) if request.optimizers else {}
            hparams = {**defaults, **_single_values(study_extra), **item.hparams}
            for lr in _lrs_for(item, request, study_spec, hparams):
                run_hparams = dict(hparams) if lr is None else {**hparams, "lr": lr}
                for seed in range(seeds):
                    yield RunSpec(
                        domain=domain.name, preset=request.preset, config=config_json, overrides=overrides,
                        recipe=item.name, hparams=run_hparams, seed=seed, budget=budget,
                        variant=variant_label(run_hparams, defaults), studies=(study,), domain_class=domain_class,
                    )


def _lrs_for(item: OptimizerItem, request: SuiteRequest, study_spec: StudySpec, hparams: Mapping) -> tuple:
    if "lr" in item.hparams:
        return (item.hparams["lr"],)
    if request.lrs:
        return request.lrs
    if study_spec.lrs:
        return tuple(study_spec.lrs)
    return (hparams.get("lr"),)


def expand_hparam_grid(recipe: str, hparams: Mapping[str, Any], origin: str) -> list[OptimizerItem]:
    """One item per combination of the list-valued hyper-parameters (a list is a grid; a tuple is a value).

    ``recipe`` may be a ``NAME:key=value`` item, as on the command line (a study's one-at-a-time sweep);
    its own values win over ``hparams``.
    """
    base = parse_optimizer_item(recipe, origin)
    grid_keys = [key for key, value in hparams.items() if isinstance(value, list)]
    fixed = {key: value for key, value in hparams.items() if key not in grid_keys}
    items = []
    for combo in itertools.product(*(hparams[key] for key in grid_keys)):
        values = {**fixed, **dict(zip(grid_keys, combo)), **base.hparams}
        items.append(OptimizerItem(base.name, values, f"{origin} {recipe}"))
    return items


def _single_values(hparams: Mapping[str, Any]) -> dict:
    return {key: value for key, value in hparams.items() if not isinstance(value, list)}


# --- validation ------------------------------------------------------------------------------------------


def validate_recipes(specs: Iterable[RunSpec], origins: Mapping[str, str] | None = None) -> None:
    """Build every distinct (recipe, hyper-parameters) on a dummy parameter; BadInput on the first failure.

    ``origins`` maps a recipe name to where it was asked for (``--optimizers adamx``), for the message.
    """
    import optimizers
    import torch

    seen = set()
    for spec in specs:
        key = (spec.recipe, canonical_json(spec.hparams))
        if key in seen:
            continue
        seen.add(key)
        dummy = [("weight", torch.nn.Parameter(torch.zeros(8, 8))), ("bias", torch.nn.Parameter(torch.zeros(8)))]
        try:
            optimizers.build(spec.recipe, dummy, **spec.hparams)
        except Exception as exc:  # ValueError by contract; any other failure is equally a bad recipe
            where = (origins or {}).get(spec.recipe) or f"optimizer {spec.recipe}"
            message = " ".join(str(exc).split())
            raise BadInput(f"{where}: {message}") from None

