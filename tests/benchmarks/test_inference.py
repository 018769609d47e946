"""The audit's statistics: t-tests against hand-computed values and scipy, Holm by hand, null calibration."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from benchmarks.analysis import inference


def test_paired_t_matches_hand_computation():
    a, b = [1.0, 2.0, 4.0], [0.5, 1.0, 2.5]
    # differences 0.5, 1.0, 1.5: mean 1, sd 0.5, se 0.5/sqrt(3), t = 2*sqrt(3) = 3.4641 on 2 df
    r = inference.paired_t(a, b)
    assert r.estimate == pytest.approx(1.0)
    assert r.sd == pytest.approx(0.5)
    assert r.p == pytest.approx(2 * sps.t.sf(2 * math.sqrt(3), 2))
    assert r.p == pytest.approx(0.07418, abs=1e-5)
    half = 4.302652729 * 0.5 / math.sqrt(3)  # t_{0.975, 2}
    assert (r.low, r.high) == pytest.approx((1 - half, 1 + half))
    assert r.method == "paired t" and r.n == 3


def test_welch_matches_scipy():
    a, b = [5.1, 4.9, 5.3, 5.0], [4.0, 4.6, 3.9]
    r = inference.welch_t(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert r.p == pytest.approx(ref.pvalue)
    ci = ref.confidence_interval(0.95)
    assert (r.low, r.high) == pytest.approx((ci.low, ci.high))
    assert r.method == "Welch t"


def test_compare_pairs_shared_seeds_and_falls_back_to_welch():
    a = {0: 1.0, 1: 2.0, 2: 4.0}
    assert inference.compare(a, {0: 0.5, 1: 1.0, 2: 2.5}).method == "paired t"
    assert inference.compare(a, {5: 0.5, 6: 1.0, 7: 2.5}).method == "Welch t"
    # a non-finite value drops that seed, so the arms no longer share every seed
    r = inference.compare(a, {0: 0.5, 1: float("nan"), 2: 2.5})
    assert r.method == "Welch t" and r.n_b == 2


def test_identical_differences_get_the_exact_sign_test_not_p_zero():
    # three seeds that each "never reach" the target give the same ratio: t is undefined, and three pairs of
    # one sign can say no more than a two-sided sign test: 2 * 0.5**3 = 0.25
    r = inference.paired_t([2.0, 2.0, 2.0], [1.0, 1.0, 1.0])
    assert r.p == pytest.approx(0.25) and r.estimate == 1.0 and r.method.startswith("sign test")
    assert inference.paired_t([1.0] * 6, [0.0] * 6).p == pytest.approx(2 / 64)
    assert inference.paired_t([1.0, 1.0], [1.0, 1.0]).p == 1.0


def test_two_constant_arms_get_the_exact_permutation_test():
    # 3 vs 3 values, every a above every b: 2 of the C(6, 3) = 20 splits are as extreme (two-sided)
    r = inference.welch_t([2.0, 2.0, 2.0], [1.0, 1.0, 1.0])
    assert r.p == pytest.approx(0.1) and r.method.startswith("permutation test")
    assert inference.welch_t([1.0, 1.0], [1.0, 1.0, 1.0]).p == 1.0


def test_too_few_values_give_no_p():
    r = inference.compare({0: 1.0}, {0: 2.0})
    assert math.isnan(r.p) and not r.testable


def test_holm_by_hand():
    # sorted 0.01 (x4) = 0.04, 0.02 (x3) = 0.06, 0.03 (x2) = 0.06 (monotone), 0.5 (x1) = 0.5; NaN ignored
    assert inference.holm([0.03, 0.5, 0.01, float("nan"), 0.02]) == pytest.approx(
        [0.06, 0.5, 0.04, float("nan"), 0.06], nan_ok=True)
    assert inference.holm([0.4, 0.4]) == [0.8, 0.8]
    assert inference.holm([0.9, 0.8]) == [1.0, 1.0]


def test_power_against_known_values():
    # a paired t-test with effect = sd needs about 10 pairs for 80% power at alpha 0.05 (Cohen's tables)
    assert inference.power(1.0, 1.0, 10) == pytest.approx(0.8031, abs=2e-3)
    assert inference.power(0.0, 1.0, 10) == pytest.approx(0.05, abs=1e-9)
    assert inference.power(1.0, 1.0, 3) < 0.3


@pytest.mark.parametrize("n", [3, 5, 10])
@pytest.mark.parametrize("paired", [True, False])
def test_null_comparisons_are_decided_at_most_alpha(n, paired):
    """Both arms from the same distribution: the rate of decided comparisons stays at alpha (5%).

    2,000 simulated pairs of arms with a shared per-seed effect (seeds correlate, as in the suite). The binomial
    standard error of a 5% rate over 2,000 trials is 0.49%; the tolerance is three of them (1.5 points).
    """
    rng = np.random.default_rng(1234 + n)
    trials, decided = 2000, 0
    for _ in range(trials):
        seed_effect = rng.normal(0, 1.0, n)
        a = seed_effect + rng.normal(0, 0.3, n)
        b = seed_effect + rng.normal(0, 0.3, n)
        if paired:
            r = inference.compare(dict(enumerate(a)), dict(enumerate(b)))
        else:
            r = inference.compare(dict(enumerate(a)), {i + 100: v for i, v in enumerate(b)})
        decided += r.p < inference.ALPHA
    assert decided / trials <= inference.ALPHA + 0.015
