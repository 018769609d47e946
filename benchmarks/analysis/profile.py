"""Performance profiles (Dolan & Moré) one per domain, by the rules a reader can check:

* a **problem** is one (preset, config) of a domain; its value for a recipe is the recipe's **mean over seeds**
  at the LR whose mean over seeds is best (the LR is never picked per seed: that would be an oracle);
* every recipe run anywhere in the domain is a solver on every problem of the domain; a recipe **not run** on a
  problem, or with no finished run at its chosen LR, counts as a failure (ratio infinity);
* ratios are :func:`benchmarks.analysis.stats.performance_ratio`'s (sign-safe for returns).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from benchmarks.analysis.stats import performance_ratio

TAUS = (1.0, 1.05, 1.1, 1.25, 1.5, 2.0)


def _best_lr_mean(runs: pd.DataFrame, higher: bool) -> float:
    means = runs[runs["status"] == "finished"].groupby("lr")["metric_value"].mean().dropna()
    if means.empty:
        return math.nan
    return float(means.max() if higher else means.min())


def domain_ratios(frame: pd.DataFrame, domain: str) -> pd.DataFrame:
    """One row per problem of ``domain`` (index ``preset config``), one column per recipe: the performance ratio."""
    runs = frame[(frame["domain"] == domain) & (frame["variant"] == "")]
    if runs.empty:
        return pd.DataFrame()
    higher = bool(runs.iloc[0]["higher_is_better"])
    recipes = sorted(set(runs["recipe"]))
    rows = {}
    keys = runs["config"].map(lambda c: json.dumps(c, sort_keys=True))
    for (preset, key), problem in runs.groupby([runs["preset"], keys], sort=True):
        values = {r: _best_lr_mean(problem[problem["recipe"] == r], higher) if r in set(problem["recipe"])
                  else math.nan for r in recipes}
        rows[f"{preset} {key}"] = performance_ratio(values, higher)
    return pd.DataFrame.from_dict(rows, orient="index", columns=recipes)


def profile_table(ratios: pd.DataFrame, taus=TAUS) -> pd.DataFrame:
    """Fraction of problems on which each recipe is within a factor tau of the best (rows recipes, columns tau)."""
    if ratios.empty:
        return pd.DataFrame()
    values = ratios.to_numpy(dtype=float)
    data = {f"tau={t:g}": (values <= t + 1e-12).mean(axis=0) for t in taus}
    return pd.DataFrame(data, index=ratios.columns)


def markdown(frame: pd.DataFrame) -> list[str]:
    """Report lines: one profile table per domain."""
    lines = []
    for domain in sorted(set(frame["domain"])) if not frame.empty else []:
        ratios = domain_ratios(frame, domain)
        table = profile_table(ratios)
        if table.empty:
            continue
        lines += [f"**{domain}** ({len(ratios)} problem(s)): fraction of problems within a factor tau of the best "
                  f"recipe; recipe means over seeds at the LR best on average; not run = failure.", "",
                  "| recipe | " + " | ".join(table.columns) + " |", "|---|" + "---|" * len(table.columns)]
        lines += [f"| {recipe} | " + " | ".join(f"{v:.2f}" for v in row) + " |"
                  for recipe, row in zip(table.index, np.asarray(table))]
        lines.append("")
    return lines
