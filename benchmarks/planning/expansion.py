"""Expansion: a :class:`~benchmarks.planning.request.SuiteRequest` turned into the run specs of a :class:`Plan`.

For every selected domain and study, the study's declaration for the preset (a :class:`domains.base.StudySpec`:
recipes, config grid, LRs, seeds) comes from the paper's protocol for a built-in domain
(:func:`benchmarks.protocol.studies_for`) and from ``Domain.studies()`` for any other; the request's overrides
replace it:

* ``optimizers`` replaces the study's recipes (the study's extra hyper-parameters for a recipe still apply,
  the item's own ``key=value`` pairs win);
* ``lrs`` replaces the study's LRs; an item's own ``lr=`` wins over both;
* ``seeds`` = N replaces the study's seed count (seeds 0..N-1);
* ``sets`` (``--set domain.field=v1,v2``) replaces that field's grid (one value sets it, several make a grid);
* ``budgets`` (a suite file's ``[budget]``) sets the run length: the engine writes it into the config field the
  domain names in ``Domain.budget_field`` (``steps`` by default), so the domain sees one budget, its config's.

A study may run a recipe at only some grid points (``StudySpec.only``, e.g. Adam-mini at 16-bit only); recipes
given with ``optimizers`` run at every point.

A suite may expand to at most :data:`MAX_RUNS` runs: the bound (grid points x recipes x LRs x seeds per
study) is checked before any spec is built, so ``--seeds 100000000`` is refused at once, not after minutes.

A domain without the study (or without the preset in it) is skipped with a note. Every spec's
hyper-parameters are the engine's policy for the recipe and the domain's run (:mod:`benchmarks.protocol.hparams`,
from ``domain.run_profile(config)`` of the config with the budget applied, so ``total_T`` and reset intervals
follow it), then the study's, then the item's. A run too short for a recipe's paper ratios is bad input ("the
preset is too short"); a reset interval longer than the run gets a one-line warning among the notes.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import domains
import optimizers
from benchmarks.errors import BadInput, short_repr
from benchmarks.planning.domain_modules import domain_class_ref, load_domain_modules
from benchmarks.planning.recipe_check import validate_recipes
from benchmarks.planning.request import OptimizerItem, SuiteRequest, expand_hparam_grid
from benchmarks.planning.run_spec import RunSpec, to_jsonable, variant_label
from benchmarks.protocol import studies_for
from benchmarks.protocol.hparams import RetiredHook, RunTooShort, default_hparams, reset_never_fires
from benchmarks.suggest import did_you_mean
from domains.base import PRESETS, ConfigError, Domain, StudySpec

MAX_RUNS = 10_000  # the largest built-in study (paper preset, every domain) has about 200 runs
DEFAULT_BUDGET_FIELD = "steps"  # the config field of a domain that declares no ``budget_field``


def budget_field(domain: Domain) -> str:
    """The config field holding ``domain``'s run length (``Domain.budget_field``; ``steps`` when undeclared)."""
    return getattr(domain, "budget_field", DEFAULT_BUDGET_FIELD)


@dataclass
class Plan:
    """The expanded suite: unique run specs (with every study that asked for them) and notes on skips."""

    specs: list[RunSpec]
    notes: list[str]


def plan_suite(request: SuiteRequest) -> Plan:
    """The request's plan with every recipe built once on a dummy parameter: BadInput on any bad name or value,
    before anything runs."""
    plan = expand(request)
    validate_recipes(plan.specs, {item.name: item.origin for item in request.optimizers or ()})
    return plan


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
        except ValueError:
            raise BadInput(f"{where}: unknown domain {name!r}{did_you_mean(name, domains.available())} "
                           f"(available: {', '.join(domains.available())}; a domain of your own loads with "
                           f"--domain-module FILE)") from None
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
    load_domain_modules(request.domain_modules, request.origin("domain_modules", "--domain-module"))
    if request.seeds is not None and request.seeds > MAX_RUNS:
        raise BadInput(f"{request.origin('seeds', '--seeds')}: {request.seeds} seeds make more runs than a suite may "
                       f"hold ({MAX_RUNS}); split the work into smaller suites")
    _check_budgets(request)
    specs: dict[str, RunSpec] = {}
    notes: list[str] = []
    bound = 0
    selected = select_domains(request, notes)
    _check_studies_known(request, selected)
    for name, domain in selected.items():
        for study in request.studies or (domain.default_study,):
            study_spec = studies_for(domain).get(study, {}).get(request.preset)
            if study_spec is None:
                notes.append(f"{name}: no study {study!r} at preset {request.preset!r}, skipped")
                continue
            bound += _size_bound(domain, study, study_spec, request)
            if bound > MAX_RUNS:
                raise BadInput(f"the suite expands to up to {bound} runs (at {name} study {study}), more than a suite "
                               f"may hold ({MAX_RUNS}); use fewer seeds, LRs or grid values, or split it")
            for spec in _expand_study(domain, study, study_spec, request, notes):
                known = specs.get(spec.run_id)
                specs[spec.run_id] = spec.with_studies(spec.studies + (known.studies if known else ()))
    if not specs:
        if request.studies:
            wanted = f"study {', '.join(request.studies)}"
        else:
            wanted = "its default study (" + ", ".join(f"{n}: {d.default_study}" for n, d in selected.items()) + \
                     "; a domain's `default_study` names what runs without --study)"
        raise BadInput(f"{request.origin('studies', '--study')}: nothing to run: no selected domain declares "
                       f"{wanted} at preset {request.preset!r}")
    return Plan(list(specs.values()), notes)


def _check_studies_known(request: SuiteRequest, selected: Mapping[str, Domain]) -> None:
    """BadInput for a requested study that no selected domain declares at any preset (a typo, not a skip)."""
    known = sorted({study for domain in selected.values() for study in studies_for(domain)})
    for study in request.studies or ():
        if study not in known:
            raise BadInput(f"{request.origin('studies', '--study')}: unknown study {study!r}"
                           f"{did_you_mean(study, known)} (the selected domains declare: {', '.join(known) or 'none'})")


def _check_budgets(request: SuiteRequest) -> None:
    """BadInput for a budget of an unknown domain or one that is not a whole number >= 1."""
    where = request.origin("budgets", "budget")
    known = domains.available()
    for name, budget in request.budgets.items():
        if name not in known:
            raise BadInput(f"{where}.{short_repr(name)}: unknown domain (known: {', '.join(known)})")
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise BadInput(f"{where}.{name}: must be a whole number >= 1, got {short_repr(budget)}")


def _grid(domain: Domain, study_spec: StudySpec, request: SuiteRequest) -> dict[str, tuple]:
    grid = {key: tuple(values) for key, values in study_spec.grid.items()}
    grid.update(request.sets.get(domain.name, {}))
    return grid


def _items(domain: Domain, study: str, study_spec: StudySpec, request: SuiteRequest) -> tuple[OptimizerItem, ...]:
    return request.optimizers or tuple(
        item for recipe in study_spec.recipes
        for item in expand_hparam_grid(recipe, study_spec.hparams.get(recipe, {}), f"domain {domain.name} study {study}")
    )


def _size_bound(domain: Domain, study: str, study_spec: StudySpec, request: SuiteRequest) -> int:
    """An upper bound of the study's run count (``only`` and de-duplication can only lower it)."""
    points = math.prod(len(values) for values in _grid(domain, study_spec, request).values())
    lrs = max(len(request.lrs or ()), len(study_spec.lrs or ()), 1)
    return points * len(_items(domain, study, study_spec, request)) * lrs * (request.seeds or study_spec.seeds)


def _expand_study(domain: Domain, study: str, study_spec: StudySpec, request: SuiteRequest,
                  notes: list[str]) -> Iterable[RunSpec]:
    grid = _grid(domain, study_spec, request)
    items = _items(domain, study, study_spec, request)
    seeds = request.seeds or study_spec.seeds
    domain_class = domain_class_ref(domain)
    budget = request.budgets.get(domain.name)
    for point in itertools.product(*grid.values()):
        raw = dict(zip(grid, point))
        config = _config(domain, request, raw)
        overrides = {key: getattr(config, key) for key in raw}
        # The run id hashes the config without the budget and the budget on its own (as before budgets were
        # applied to the config), so the ids of stored runs stay valid.
        config_json = to_jsonable(config)
        if budget is not None:
            overrides[budget_field(domain)] = budget
            config = _config(domain, request, overrides, budget_given=True)
        for item in items:
            allowed = {} if request.optimizers else study_spec.only.get(item.name, {})
            if any(getattr(config, key) not in values for key, values in allowed.items()):
                continue
            defaults = _policy(domain, item.name, config, request)
            study_extra = study_spec.hparams.get(item.name, {}) if request.optimizers else {}
            hparams = {**defaults, **_single_values(study_extra), **item.hparams}
            _warn_if_reset_never_fires(domain, item.name, hparams, config, notes)
            for lr in _lrs_for(item, request, study_spec, hparams):
                run_hparams = dict(hparams) if lr is None else {**hparams, "lr": lr}
                for seed in range(seeds):
                    yield RunSpec(
                        domain=domain.name, preset=request.preset, config=config_json, overrides=overrides,
                        recipe=item.name, hparams=run_hparams, seed=seed, budget=budget,
                        variant=variant_label(run_hparams, defaults), studies=(study,), domain_class=domain_class,
                        identity_omits=dict(domain.identity_omits),
                    )


def _config(domain: Domain, request: SuiteRequest, overrides: Mapping[str, Any], budget_given: bool = False):
    """The domain's config at the preset with ``overrides``; BadInput naming where a bad value came from."""
    try:
        return domain.config(request.preset, overrides)
    except ConfigError as exc:
        if budget_given:
            where = f"{request.origin('budgets', 'budget')}: "
        else:
            where = f"{request.origin('sets', '--set')}: " if domain.name in request.sets else ""
        raise BadInput(f"{where}{exc}") from None


def _policy(domain: Domain, recipe: str, config, request: SuiteRequest) -> dict:
    """The policy's hyper-parameters; BadInput when the run is too short for the recipe or the domain still
    declares the retired ``default_hparams`` hook. An unknown recipe gets none here: plan_suite's recipe check
    reports it with where it came from."""
    if recipe not in optimizers.RECIPES:
        return {}
    try:
        return default_hparams(domain, recipe, config)
    except RunTooShort as exc:
        budget = request.budgets.get(domain.name)
        run = f"budget {budget}" if budget is not None else f"preset {request.preset!r}"
        raise BadInput(f"{domain.name} {run} is too short for {recipe}: {exc}") from None
    except (RetiredHook, NotImplementedError) as exc:  # a domain that does not declare its run
        raise BadInput(str(exc)) from None


def _warn_if_reset_never_fires(domain: Domain, recipe: str, hparams: Mapping, config, notes: list[str]) -> None:
    if recipe not in optimizers.RECIPES:
        return
    warning = reset_never_fires(recipe, hparams, domain.run_profile(config).optimizer_steps)
    line = f"{domain.name}: {warning}" if warning else None
    if line and line not in notes:
        notes.append(line)


def _lrs_for(item: OptimizerItem, request: SuiteRequest, study_spec: StudySpec, hparams: Mapping) -> tuple:
    if "lr" in item.hparams:
        return (item.hparams["lr"],)
    if request.lrs:
        return request.lrs
    if study_spec.lrs:
        return tuple(study_spec.lrs)
    return (hparams.get("lr"),)


def _single_values(hparams: Mapping[str, Any]) -> dict:
    return {key: value for key, value in hparams.items() if not isinstance(value, list)}


