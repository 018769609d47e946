"""The statistics every output and the claims audit use: cell summaries, bootstrap intervals, performance ratios."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 4000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof = 1; NaN for one value) and count of finite values."""

    mean: float
    std: float
    n: int


def summarize(values) -> Summary:
    """Summary of the finite values in ``values``."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return Summary(math.nan, math.nan, 0)
    return Summary(float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan, len(x))


def bootstrap(groups, statistic, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float, float]:
    """(statistic, CI low, CI high): ``statistic(*means)`` of the groups' means, with a percentile-bootstrap
    interval (each group resampled with replacement, fixed seed). The interval is NaN when a group has fewer
    than two values (an interval needs a spread)."""
    groups = [np.asarray(g, dtype=np.float64) for g in groups]
    if any(len(g) == 0 for g in groups):
        return math.nan, math.nan, math.nan
    value = float(statistic(*(g.mean() for g in groups)))
    if any(len(g) < 2 for g in groups):
        return value, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = [g[rng.integers(0, len(g), size=(resamples, len(g)))].mean(axis=1) for g in groups]
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(statistic(*means), [tail, 100 - tail])
    return value, float(low), float(high)


def performance_ratio(values: dict[str, float], higher_is_better: bool) -> dict[str, float]:
    """Dolan–Moré ratios of one problem: solver -> (its cost / the best cost), ``inf`` for a missing value.

    Costs are the metric when lower is better and all values are positive; for higher-is-better metrics the
    cost of ``v`` is ``best / v`` when all values are positive; otherwise (signs mixed, e.g. RL returns) the
    ratio is ``1 + gap / |best|`` with ``gap`` the distance to the best value.
    """
    finite = {k: v for k, v in values.items() if v is not None and math.isfinite(v)}
    if not finite:
        return {k: math.inf for k in values}
    best = max(finite.values()) if higher_is_better else min(finite.values())
    ratios = {}
    for solver, value in values.items():
        if solver not in finite:
            ratios[solver] = math.inf
        elif all(v > 0 for v in finite.values()):
            ratios[solver] = best / value if higher_is_better else value / best
        else:
            gap = (best - value) if higher_is_better else (value - best)
            ratios[solver] = 1.0 + gap / abs(best) if best != 0 else (1.0 if gap == 0 else math.inf)
    return ratios
