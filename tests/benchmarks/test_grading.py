"""Every verdict path of the claim grading, on hand-made comparisons with the numbers written here."""

import math

import pytest

from benchmarks.analysis.inference import compare
from benchmarks.audit import grading as v

# Stable-SPAM minus Adam perplexity on 5 seeds: clearly negative (supports "Stable-SPAM beats Adam")
BETTER = compare({s: 100.0 - 5 + 0.1 * s for s in range(5)}, {s: 100.0 + 0.3 * s for s in range(5)})
WORSE = compare({s: 100.0 + 5 + 0.1 * s for s in range(5)}, {s: 100.0 + 0.3 * s for s in range(5)})
NOISE = compare({s: 100.0 + (1, -1, 2, -2, 0.5)[s] for s in range(5)}, {s: 100.0 for s in range(5)})
BETTER_N3 = compare({s: 95.0 + 0.1 * s for s in range(3)}, {s: 100.0 + 0.3 * s for s in range(3)})


def check(result, part="adam", in_regime=True, effect=None):
    return v.Check(f"stable_spam beats {part}", part, result, in_regime, effect)


def graded(parts, checks, premise=None):
    v.adjust(checks + ([premise] if premise else []))
    return v.grade(parts, checks, premise)


def test_reproduced_when_every_part_passes_in_regime_with_five_seeds():
    out = graded(("adam", "spam"), [check(BETTER, "adam"), check(BETTER, "spam")])
    assert out.verdict == v.REPRODUCED


def test_not_run_without_runs():
    assert graded(("adam",), [check(None)]).verdict == v.NOT_RUN


def test_partially_run_names_k_of_m_and_the_missing_parts():
    out = graded(("adam", "adam_clip", "spam"), [check(BETTER, "adam")])
    assert out.verdict == "partially run (1 of 3)"
    assert "adam_clip, spam" in out.why


def test_a_significant_contradiction_wins_over_support():
    out = graded(("adam", "spam"), [check(BETTER, "adam"), check(WORSE, "spam")])
    assert out.verdict == v.NOT_REPRODUCED and "spam" in out.why


def test_contradiction_out_of_regime_does_not_count():
    out = graded(("adam", "spam"), [check(BETTER, "adam"), check(WORSE, "spam", in_regime=False)])
    assert out.verdict == v.REGIME_NOT_REACHED


def test_regime_unknown_is_said():
    out = graded(("adam",), [check(BETTER, in_regime=None)])
    assert out.verdict == v.REGIME_NOT_REACHED and "unknown" in out.why


def test_premise_absent_when_four_bit_adam_is_not_worse():
    premise = v.Check("4-bit adam worse than 16-bit adam", "premise", NOISE)
    assert graded(("adam",), [check(BETTER)], premise).verdict == v.PREMISE_ABSENT
    premise = v.Check("4-bit adam worse than 16-bit adam", "premise", BETTER)
    assert graded(("adam",), [check(BETTER)], premise).verdict == v.REPRODUCED


def test_premise_out_of_regime_decides_nothing():
    premise = v.Check("4-bit adam worse than 16-bit adam", "premise", NOISE, in_regime=False)
    assert graded(("adam",), [check(BETTER)], premise).verdict == v.REPRODUCED


def test_missing_parts_come_before_an_absent_premise_which_the_why_line_adds():
    premise = v.Check("4-bit adam worse than 16-bit adam", "premise", NOISE)
    out = graded(("INT2", "INT3", "INT4"), [check(BETTER, "INT4")], premise)
    assert out.verdict == "partially run (1 of 3)"
    assert "not run: INT2, INT3" in out.why and "premise absent" in out.why


def test_a_contradiction_refutes_a_partially_run_claim():
    out = graded(("adam", "spam", "lion"), [check(BETTER, "adam"), check(WORSE, "spam")])
    assert out.verdict == v.NOT_REPRODUCED


def test_underpowered_with_three_seeds_even_when_significant():
    out = graded(("adam",), [check(BETTER_N3)])
    assert BETTER_N3.p < 0.05
    assert out.verdict == v.UNDERPOWERED and "3 seeds" in out.why


def test_undecided_with_power_for_the_paper_effect_is_inconclusive():
    # spread of the differences ~1.6 on 5 seeds: a paper effect of 20 would have been seen, one of 0.5 not
    assert graded(("adam",), [check(NOISE, effect=20.0)]).verdict == v.INCONCLUSIVE
    assert graded(("adam",), [check(NOISE, effect=0.5)]).verdict == v.UNDERPOWERED


def test_holm_makes_a_marginal_comparison_undecided_in_a_large_family():
    marginal = compare({s: 100.0 - 1.0 + 0.5 * (s % 2) for s in range(5)}, {s: 100.0 + 0.2 * s for s in range(5)})
    assert 0.001 < marginal.p < 0.05
    family = [check(marginal)] + [check(NOISE, f"x{i}") for i in range(30)]
    v.adjust(family)
    assert family[0].p_adjusted > 0.05
    assert family[0].outcome == v.UNDECIDED
    assert math.isfinite(family[0].p_adjusted)


@pytest.mark.parametrize("verdict", v.VERDICTS)
def test_every_verdict_is_documented(verdict):
    assert f"``{verdict}" in v.__doc__
