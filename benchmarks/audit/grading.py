"""Verdict rules of the claims audit: from tested comparisons to one verdict per claim, with a reason.

A claim is checked through **comparisons** (:class:`Check`), each covering one *part* of what the claim says
(a rival, a precision, a chain, an environment). Every comparison is a t-test (:mod:`benchmarks.analysis.inference`)
on a quantity whose **negative** values support the claim ("A beats B" is tested on ``metric(A) - metric(B)``
with lower-is-better metrics, on ``metric(B) - metric(A)`` otherwise; "a ratio is below r" on ``ratio - r``).
Holm's correction runs over every comparison of one audit (:func:`adjust`); a comparison is *decided* when its
adjusted p is below ``ALPHA``: it *supports* the claim with a negative estimate and *contradicts* it otherwise.

The verdicts, first match wins:

* ``not run`` — the store holds none of the runs the claim needs, or none of its comparisons could run (an LR
  curve with holes is judged only when complete);
* ``not reproduced`` — a comparison in regime significantly contradicts the claim (one contradicted part of a
  conjunction refutes it, whatever the other parts say);
* ``partially run (k of m)`` — only k of the m parts the claim speaks of ran (the others are named);
* ``premise absent`` — the claim presumes that 4-bit hurts Adam (C1, C3, C8, C9, C10) and at this scale 4-bit
  Adam is not significantly worse than 16-bit Adam, on cells in regime (a premise check out of regime or of
  unknown regime decides nothing);
* ``regime not reached`` — a comparison rests on cells whose models did not beat the domain's trivial
  baselines by the margin (or whose regime is unknown);
* ``underpowered`` — fewer than ``MIN_SEEDS`` seeds per arm, or, for an undecided comparison, a power estimate
  from the observed spread says the paper's effect size could not have been seen;
* ``inconclusive`` — undecided for another reason;
* ``reproduced`` — every part ran, in regime, with enough seeds, and passes after correction.

Coverage comes before the premise: a claim of which parts never ran cannot be weighed as a whole, and its
premise check covers only the parts that ran; the why line then adds what the premise check found.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from benchmarks.analysis.inference import ALPHA, MIN_SEEDS, POWER_TARGET, TestResult, holm, power

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
PARTIALLY_RUN = "partially run"
UNDERPOWERED = "underpowered"
REGIME_NOT_REACHED = "regime not reached"
PREMISE_ABSENT = "premise absent"
INCONCLUSIVE = "inconclusive"
NOT_RUN = "not run"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, PARTIALLY_RUN, UNDERPOWERED, REGIME_NOT_REACHED, PREMISE_ABSENT,
            INCONCLUSIVE, NOT_RUN)

SUPPORTS, CONTRADICTS, UNDECIDED = "supports", "contradicts", "undecided"


@dataclass
class Check:
    """One tested comparison. ``result`` tests a quantity whose negative values support the claim.

    ``part`` names what of the claim it covers (the rival, precision, environment ...); ``in_regime`` is True
    when every cell it uses beat its trivial baselines by the margin, False when one did not, None when
    unknown; ``paper_effect`` is the paper's effect in the same units (for the power estimate), if known.
    """

    what: str
    part: str
    result: TestResult | None
    in_regime: bool | None = True
    paper_effect: float | None = None
    numbers: str = ""
    p_adjusted: float = math.nan

    @property
    def ran(self) -> bool:
        """Whether both arms have at least one value."""
        return self.result is not None and self.result.n_a > 0 and self.result.n_b > 0

    @property
    def outcome(self) -> str:
        """``supports``, ``contradicts`` or ``undecided`` at the adjusted p-value."""
        if not self.ran or not (self.p_adjusted < ALPHA):
            return UNDECIDED
        return SUPPORTS if self.result.estimate < 0 else CONTRADICTS

    @property
    def underpowered(self) -> bool:
        """Fewer than ``MIN_SEEDS`` per arm, or too little power for the paper's effect at the observed spread."""
        if not self.ran:
            return False
        if min(self.result.n_a, self.result.n_b) < MIN_SEEDS:
            return True
        if self.paper_effect is None:
            return False
        estimate = power(self.paper_effect, self.result.sd, self.result.n)
        return math.isfinite(estimate) and estimate < POWER_TARGET


@dataclass
class Verdict:
    """A claim's verdict and the one line that says why."""

    verdict: str
    why: str
    checks: list[Check] = field(default_factory=list)


def adjust(checks: list[Check]) -> None:
    """Set every check's Holm-adjusted p-value, over the whole family (one audit)."""
    raw = [c.result.p if c.ran else math.nan for c in checks]
    for check, p in zip(checks, holm(raw)):
        check.p_adjusted = p


def _names(checks) -> str:
    return "; ".join(c.what for c in checks)


def grade(parts: tuple[str, ...], checks: list[Check], premise: Check | None = None) -> Verdict:
    """The verdict of one claim that speaks of ``parts``, from its (Holm-adjusted) ``checks``.

    ``premise`` is the check "4-bit Adam is worse than 16-bit Adam" for claims that presume it (None for the
    others); see the module docstring for the rules.
    """
    ran = [c for c in checks if c.ran]
    if not ran:
        held = [c.numbers for c in checks if c.numbers]  # why a comparison could not run, if it says
        why = f"no comparison could run: {'; '.join(held)}" if held else \
            "the store holds none of the runs this claim needs"
        return Verdict(NOT_RUN, why, checks)
    graded = [c for c in ran if c.in_regime is True]
    contradicted = [c for c in graded if c.outcome == CONTRADICTS]
    if contradicted:
        return Verdict(NOT_REPRODUCED, f"significantly contradicted: {_names(contradicted)}", checks)
    absent = (premise is not None and premise.ran and premise.in_regime is True
              and premise.outcome != SUPPORTS)
    premise_text = (f"4-bit Adam is not significantly worse than 16-bit Adam here "
                    f"({premise.numbers or premise.what}; adjusted p {premise.p_adjusted:.3g})") if absent else ""
    ran_parts = {c.part for c in ran}
    missing = [p for p in parts if p not in ran_parts]
    if missing:
        k, m = len(parts) - len(missing), len(parts)
        also = f"; also premise absent: {premise_text}" if absent else ""
        outside = [c for c in ran if c.in_regime is not True]
        if outside:
            also += f"; {len(outside)} of the {len(ran)} comparisons that ran are not in regime"
        return Verdict(f"{PARTIALLY_RUN} ({k} of {m})", f"not run: {', '.join(missing)}{also}", checks)
    if absent:
        return Verdict(PREMISE_ABSENT, premise_text, checks)
    outside = [c for c in ran if c.in_regime is not True]
    if outside:
        unknown = [c for c in outside if c.in_regime is None]
        reason = "out of regime" if len(unknown) < len(outside) else "regime unknown (no baselines stored)"
        return Verdict(REGIME_NOT_REACHED, f"{reason}: {_names(outside)}", checks)
    undecided = [c for c in graded if c.outcome == UNDECIDED]
    weak = [c for c in graded if c.underpowered]
    if undecided:
        weak_undecided = [c for c in undecided if c.underpowered]
        if weak_undecided:
            return Verdict(UNDERPOWERED, f"undecided with too few seeds or too little power: "
                           f"{_names(weak_undecided)}", checks)
        return Verdict(INCONCLUSIVE, f"undecided after Holm's correction: {_names(undecided)}", checks)
    if weak:
        smallest = min(min(c.result.n_a, c.result.n_b) for c in weak)
        return Verdict(UNDERPOWERED, f"every part significant, but with {smallest} seeds per arm "
                       f"(fewer than {MIN_SEEDS})", checks)
    return Verdict(REPRODUCED, f"all {len(parts)} parts significant after Holm's correction, in regime", checks)
