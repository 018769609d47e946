"""The claims audit (SPEC §4): each claim of :mod:`benchmarks.protocol.claims` checked against the stored runs.

Rules, the same for every claim:

* Only the runs the claim selects are used (one domain's, only each recipe's default hyper-parameters,
  ``variant == ""``); studies do not matter.
* A comparison is made within one config (same preset, size, precision, ...), except where the claim compares
  across a field (C1, C3: precision), and each recipe is taken **at its best LR** among those run there: the LR
  with the fewest diverged seeds, then the best mean metric.
* Verdicts follow :mod:`benchmarks.audit.verdicts`; the statistics are :mod:`benchmarks.analysis.stats`'.

Each result lists every comparison with its numbers, n and CI, so a reader can judge the scale it rests on.
"""

from __future__ import annotations

import json
from typing import Iterable, Iterator

import pandas as pd

from benchmarks.analysis.frame import varying_fields
from benchmarks.audit.claim import Claim, Selection
from benchmarks.audit.verdicts import ClaimResult, combine
from benchmarks.store import Store


class Auditor:
    """Selects and groups the runs of a runs frame (:func:`benchmarks.analysis.frame.runs_frame`) for the
    comparisons, and hands them the store for curves."""

    def __init__(self, frame: pd.DataFrame, store: Store):
        self.frame = frame[frame["variant"] == ""] if not frame.empty else frame
        self.store = store

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

    def check(self, claim: Claim) -> ClaimResult:
        """The audit of one claim."""
        runs = self.runs(claim.selection)
        comparisons = [] if runs.empty else [c for check in claim.checks for c in check.check(self, runs)]
        return ClaimResult(claim.id, claim.text, combine([c.verdict for c in comparisons]), comparisons, claim.note,
                           claim.source_text())


def audit(frame: pd.DataFrame, store: Store, claims: Iterable[Claim]) -> list[ClaimResult]:
    """Audit ``claims`` (in order) against ``frame`` (all runs of the store) and the store's curves."""
    auditor = Auditor(frame, store)
    return [auditor.check(claim) for claim in claims]
