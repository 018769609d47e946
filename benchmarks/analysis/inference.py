"""Inference for the claims audit: seed-paired and Welch t-tests, t intervals, Holm's correction, power.

The suite gives every recipe the same initialisation and data order for the same seed, so two arms that share
seeds are analysed as **pairs** (a paired t-test on the per-seed differences); arms without shared seeds fall
back to **Welch's** unequal-variance t-test. Intervals are t-based. Over one audit, Holm's step-down procedure
controls the family-wise error rate across every comparison (``holm``).

Every function is pure: numbers in, numbers out; the claims audit decides what to compare.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats as sps

ALPHA = 0.05
MIN_SEEDS = 5  # fewer seeds per arm than this makes a comparison "underpowered" whatever its p-value
POWER_TARGET = 0.8


@dataclass(frozen=True)
class TestResult:
    """``mean(a) - mean(b)`` with a t interval and a two-sided p-value.

    ``method`` is ``"paired t"`` (on seeds both arms ran) or ``"Welch t"``; when the t statistic is undefined
    (every difference equal, or both arms constant) the exact test those data allow instead: a two-sided sign
    test (``2 * 0.5**n``) or permutation test (``2 / C(n_a + n_b, n_a)``), never a p of 0 from three seeds;
    ``n`` the number of pairs (paired) or ``min(n_a, n_b)`` (Welch); ``sd`` the standard deviation of the differences (paired) or the pooled
    standard error times sqrt(n) (Welch), which is what a power estimate needs.
    """

    estimate: float
    low: float
    high: float
    p: float
    n_a: int
    n_b: int
    n: int
    method: str
    sd: float

    @property
    def testable(self) -> bool:
        """Whether the test produced a p-value (at least two values per arm, or two pairs)."""
        return math.isfinite(self.p)


def _finite(values: Mapping[int, float]) -> dict[int, float]:
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}


def compare(a: Mapping[int, float], b: Mapping[int, float], confidence: float = 1 - ALPHA) -> TestResult:
    """Test ``mean(a) - mean(b) == 0`` for per-seed values ``seed -> value`` of two arms.

    Seeds present in both arms are analysed as pairs when there are at least two of them and they cover
    every seed of both arms (the design of the suite); otherwise Welch's test uses all finite values.
    Non-finite values are dropped. Fewer than two values on a side gives NaN p and interval.
    """
    a, b = _finite(a), _finite(b)
    shared = sorted(set(a) & set(b))
    if len(shared) >= 2 and len(shared) == len(a) == len(b):
        return paired_t([a[s] for s in shared], [b[s] for s in shared], confidence)
    return welch_t(list(a.values()), list(b.values()), confidence)


def paired_t(a: Sequence[float], b: Sequence[float], confidence: float = 1 - ALPHA) -> TestResult:
    """Paired t-test and interval on ``a[i] - b[i]``."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = len(d)
    if n < 2:
        return TestResult(float(d.mean()) if n else math.nan, math.nan, math.nan, math.nan, n, n, n, "paired t",
                          math.nan)
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    if se == 0:  # identical differences: t is undefined; n pairs of one sign are worth a sign test, no more
        p = 1.0 if mean == 0 else min(1.0, 2 * 0.5 ** n)
        return TestResult(mean, mean, mean, p, n, n, n, "sign test (differences all equal)", 0.0)
    t = mean / se
    p = float(2 * sps.t.sf(abs(t), n - 1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * se
    return TestResult(mean, mean - half, mean + half, p, n, n, n, "paired t", sd)


def welch_t(a: Sequence[float], b: Sequence[float], confidence: float = 1 - ALPHA) -> TestResult:
    """Welch's unequal-variance t-test and interval on ``mean(a) - mean(b)``."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = len(x), len(y)
    estimate = float(x.mean() - y.mean()) if na and nb else math.nan
    if na < 2 or nb < 2:
        return TestResult(estimate, math.nan, math.nan, math.nan, na, nb, min(na, nb), "Welch t", math.nan)
    va, vb = x.var(ddof=1) / na, y.var(ddof=1) / nb
    se = math.sqrt(va + vb)
    if se == 0:  # two constant arms: t is undefined; their exact permutation test (no overlap possible) instead
        p = 1.0 if estimate == 0 else min(1.0, 2 / math.comb(na + nb, na))
        return TestResult(estimate, estimate, estimate, p, na, nb, min(na, nb), "permutation test (arms constant)",
                          0.0)
    df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    t = estimate / se
    p = float(2 * sps.t.sf(abs(t), df))
    half = float(sps.t.ppf(0.5 + confidence / 2, df)) * se
    n = min(na, nb)
    return TestResult(estimate, estimate - half, estimate + half, p, na, nb, n, "Welch t", se * math.sqrt(n))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (NaN stays NaN and does not count towards the family size)."""
    p = np.asarray(p_values, dtype=np.float64)
    valid = np.flatnonzero(np.isfinite(p))
    adjusted = np.full(len(p), math.nan)
    m = len(valid)
    running = 0.0
    for rank, index in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def power(effect: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of a two-sided one-sample (paired) t-test with ``n`` pairs to see a true mean difference
    ``effect`` when the differences have standard deviation ``sd`` (noncentral t). NaN when not computable."""
    if n < 2 or not math.isfinite(sd) or not math.isfinite(effect):
        return math.nan
    if sd == 0:
        return 1.0 if effect != 0 else alpha
    df = n - 1
    nc = abs(effect) / sd * math.sqrt(n)
    crit = sps.t.ppf(1 - alpha / 2, df)
    return float(sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc))
