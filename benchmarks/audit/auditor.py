"""The claims audit (SPEC §4): each claim of :mod:`benchmarks.protocol.claims` checked against the stored runs.

Rules, the same for every claim:

* Only the runs the claim selects are used (one domain's, only each recipe's default hyper-parameters,
  ``variant == ""``); studies do not matter.
* A comparison is made within one config (same preset, size, precision, ...), except where the claim compares
  across a field (C1, C3: precision), and each recipe is taken **at its best LR** among those run there: the LR
  with the fewest diverged seeds, then the best mean over seeds.
* Every comparison is a test (:mod:`benchmarks.audit.comparisons`); Holm's correction runs over **every**
  comparison of the audit, the premise checks included (:func:`benchmarks.audit.grading.adjust`), and the
  verdicts follow :func:`benchmarks.audit.grading.grade`.
* Regime: each comparison knows whether its cells beat the domain's trivial baselines
  (:mod:`benchmarks.analysis.regime`); the frame gets its ``baselines`` column here when it has none.

Each result lists every comparison with its numbers, n, interval, raw and adjusted p, so a reader can judge
the scale it rests on.
"""

from __future__ import annotations

import json
import math
from typing import Iterable, Iterator

import pandas as pd

from benchmarks.analysis.frame import at_best_lr, varying_fields
from benchmarks.analysis.regime import attach_baselines
from benchmarks.audit.claim import Claim, Premise, Selection
from benchmarks.audit.comparisons import LABELS, Overhead, beats_check
from benchmarks.audit.grading import SUPPORTS, Check, adjust, grade
from benchmarks.audit.verdicts import ClaimResult
from benchmarks.store import Store

PERF_FILE = "perf/optimizer_step.json"  # where the report looks for the optimizer-step benchmark's JSON


class Auditor:
    """Selects and groups the runs of a runs frame (:func:`benchmarks.analysis.frame.runs_frame`) for the
    comparisons, and hands them the store for curves and ``perf`` (the optimizer-step benchmark's JSON)."""

    def __init__(self, frame: pd.DataFrame, store: Store | None, perf: dict | None = None):
        if not frame.empty and "baselines" not in frame:
            frame = attach_baselines(frame)
        self.frame = frame[frame["variant"] == ""] if not frame.empty else frame
        self.store = store
        self.perf = perf
        self._claim: Claim | None = None

    def paper_effect(self, part: str) -> float | None:
        """The paper's relative effect for ``part`` of the claim being checked, if it states one."""
        return None if self._claim is None else self._claim.paper_effects.get(part)

    def runs(self, selection: Selection) -> pd.DataFrame:
        """The runs of ``selection`` (default hyper-parameters only)."""
        frame = self.frame
        if frame.empty:
            return frame
        keep = frame["domain"] == selection.domain
        if selection.recipes is not None:
            keep &= frame["recipe"].isin(selection.recipes)
        for name, allowed in selection.config.items():
            keep &= frame["config"].map(lambda c, n=name, a=allowed: c.get(n) in a)
        return frame[keep]

    def configs(self, runs: pd.DataFrame, drop: tuple[str, ...] = ()) -> Iterator[tuple[str, pd.DataFrame]]:
        """(description, runs) per distinct (preset, config without ``drop``), described by its varying fields."""
        if runs.empty:
            return
        domain_runs = self.frame[self.frame["domain"] == runs.iloc[0]["domain"]]
        varying = [f for f in varying_fields(domain_runs) if f not in drop] if not domain_runs.empty else []
        keys = runs["config"].map(lambda c: json.dumps({k: v for k, v in c.items() if k not in drop}, sort_keys=True))
        for _, group in runs.groupby([runs["preset"], keys], sort=True):
            config = group.iloc[0]["config"]
            described = ", ".join(f"{f}={config.get(f)}" for f in varying)
            yield f"{group.iloc[0]['preset']}" + (f" {described}" if described else ""), group

    def premise_checks(self, domain: str, premise: Premise) -> list[Check]:
        """``premise.recipe`` at each of ``premise.values`` is worse than at the ``reference`` values, per config
        apart from the field (each side at its best LR): one check per (config, value, reference value)."""
        runs = self.runs(Selection(domain, (premise.recipe,)))
        out = []
        for where, group in self.configs(runs, drop=(premise.field,)):
            for value in premise.values:
                worse = at_best_lr(_field_is(group, premise.field, value))
                if worse.empty:
                    continue
                for reference in premise.reference:
                    better = at_best_lr(_field_is(group, premise.field, reference))
                    if not better.empty:
                        label = LABELS.get(value, value)
                        out.append(beats_check(better, worse, f"{premise.recipe} ({reference})",
                                               f"{premise.recipe} ({value})", f"premise {where}", f"premise {label}"))
        return out

    def check(self, claim: Claim) -> tuple[ClaimResult, list[Check]]:
        """The (ungraded) result of one claim and its premise checks."""
        self._claim = claim
        runs = self.runs(claim.selection)
        checks = [c for kind in claim.checks for c in kind.check(self, runs)]
        self._claim = None
        premises = self.premise_checks(claim.selection.domain, claim.premise) if claim.premise else []
        result = ClaimResult(claim.id, claim.text, note=claim.note, source=claim.source_text(), checks=checks,
                             parts=claim.parts or tuple(dict.fromkeys(c.part for c in checks if c.ran)))
        return result, premises


def _field_is(runs: pd.DataFrame, name: str, value) -> pd.DataFrame:
    return runs[runs["config"].map(lambda c: c.get(name) == value).astype(bool)]


def premise_of(checks: list[Check]) -> Check | None:
    """The premise check that decides: one that supports the premise if any; else the in-regime one with the
    smallest adjusted p; else any that ran (which then decides nothing)."""
    ran = [c for c in checks if c.ran]
    supporting = [c for c in ran if c.outcome == SUPPORTS]
    if supporting:
        return supporting[0]
    in_regime = [c for c in ran if c.in_regime is True]
    pool = in_regime or ran
    return min(pool, key=lambda c: c.p_adjusted if math.isfinite(c.p_adjusted) else 2.0) if pool else None


def audit(frame: pd.DataFrame, store: Store | None, claims: Iterable[Claim], perf: dict | None = None
          ) -> list[ClaimResult]:
    """Audit ``claims`` (in order) against ``frame`` (all runs of the store), the store's curves and ``perf``
    (the JSON of ``benchmarks/perf/optimizer_step.py``, or None), with Holm's correction over the whole audit."""
    auditor = Auditor(frame, store, perf)
    claims = list(claims)
    claim_kinds = {claim.id: claim.checks for claim in claims}
    checked = [auditor.check(claim) for claim in claims]
    premises: dict[str, Check] = {}  # the same premise check counts once in the family
    for _, claim_premises in checked:
        for c in claim_premises:
            premises.setdefault(c.what, c)
    family = [c for result, _ in checked for c in result.checks] + list(premises.values())
    adjust(family)
    results = []
    for result, claim_premises in checked:
        premise = premise_of([premises[c.what] for c in claim_premises])
        verdict = grade(result.parts, result.checks, premise)
        result.verdict, result.why, result.premise = verdict.verdict, verdict.why, premise
        if not result.checks and any(isinstance(kind, Overhead) for kind in claim_kinds[result.id]):
            result.why = (f"no interleaved optimizer-step benchmark found (write it with python -m "
                          f"benchmarks.perf.optimizer_step --json OUT/{PERF_FILE}); run wall times are not used")
        results.append(result)
    return results
