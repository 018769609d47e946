"""Verdict rules of the claims audit: how numbers become ``reproduced`` / ``not reproduced`` / ``inconclusive``.

* "A beats B" (:func:`beats`): the difference of means of the finished runs' metric, with a 95%
  percentile-bootstrap CI (:func:`benchmarks.analysis.stats.bootstrap`). CI entirely on A's side ->
  ``reproduced``; entirely on B's side -> ``not reproduced``; otherwise, or with fewer than 2 finished seeds on
  a side -> ``inconclusive``. A recipe whose runs all diverged loses to one that finished.
* A ratio or growth against a limit (:func:`decide`): CI entirely below the limit reproduces, entirely above
  refutes, otherwise inconclusive.
* A claim made of several comparisons (:func:`combine`) is ``reproduced`` when all are, ``not reproduced`` when
  all are, ``inconclusive`` otherwise (mixed or undecided); ``not run`` when the store holds none of the runs
  it needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from benchmarks.analysis.stats import bootstrap, summarize

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN = "reproduced", "not reproduced", "inconclusive", "not run"


@dataclass
class Comparison:
    """One checked statement with its numbers."""

    what: str
    verdict: str
    numbers: str


@dataclass
class ClaimResult:
    """The audit of one claim."""

    id: str
    claim: str
    verdict: str = NOT_RUN
    comparisons: list[Comparison] = field(default_factory=list)
    note: str = ""
    source: str = ""  # where the paper states it, with the paper's version


def combine(verdicts: list[str]) -> str:
    """One verdict from several comparisons (see the module docstring)."""
    if not verdicts:
        return NOT_RUN
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    if all(v == NOT_REPRODUCED for v in verdicts):
        return NOT_REPRODUCED
    return INCONCLUSIVE


def decide(low: float, high: float, favourable_below: float) -> str:
    """Verdict from a CI [low, high]: entirely below ``favourable_below`` reproduces, entirely above refutes."""
    if math.isnan(low) or math.isnan(high):
        return INCONCLUSIVE
    if high < favourable_below:
        return REPRODUCED
    if low > favourable_below:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def summary_text(values) -> str:
    """``mean ± std (n=k)`` of the finite values, or ``no finished run``."""
    s = summarize(values)
    if s.n == 0:
        return "no finished run"
    spread = "" if math.isnan(s.std) else f" ± {s.std:.3g}"
    return f"{s.mean:.4g}{spread} (n={s.n})"


def beats(a: pd.DataFrame, b: pd.DataFrame, name_a: str, name_b: str, where: str) -> Comparison:
    """Whether runs ``a`` have a better headline metric than runs ``b`` (module rules)."""
    higher = bool(a.iloc[0]["higher_is_better"])
    va = a.loc[a["status"] == "finished", "metric_value"].dropna().to_numpy()
    vb = b.loc[b["status"] == "finished", "metric_value"].dropna().to_numpy()
    div_a, div_b = int((a["status"] == "diverged").sum()), int((b["status"] == "diverged").sum())
    what = f"{where}: {name_a} beats {name_b}"
    numbers = (f"{name_a} {summary_text(va)}{f', {div_a} div' if div_a else ''}; "
               f"{name_b} {summary_text(vb)}{f', {div_b} div' if div_b else ''}")
    if len(va) == 0 or len(vb) == 0:
        if len(va) and div_b:
            return Comparison(what, REPRODUCED, numbers + f"; every {name_b} run diverged")
        if len(vb) and div_a:
            return Comparison(what, NOT_REPRODUCED, numbers + f"; every {name_a} run diverged")
        return Comparison(what, INCONCLUSIVE, numbers)
    sign = -1.0 if higher else 1.0  # express "better" as a negative difference
    diff, low, high = bootstrap([va, vb], lambda x, y: sign * (x - y))
    if math.isnan(low):
        return Comparison(what, INCONCLUSIVE, numbers + "; too few seeds for a CI")
    shown = sorted((sign * low, sign * high))
    numbers += f"; difference {sign * diff:.4g} [95% CI {shown[0]:.4g}, {shown[1]:.4g}]"
    return Comparison(what, decide(low, high, 0.0), numbers)
