"""What the audit hands the report: one :class:`ClaimResult` per claim, and how a tested comparison is written.

The verdict rules themselves are :mod:`benchmarks.audit.grading`'s; the statistics are
:mod:`benchmarks.analysis.inference`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from benchmarks.analysis.stats import summarize
from benchmarks.audit.grading import NOT_RUN, Check

__all__ = ["ClaimResult", "summary_text", "result_text"]


@dataclass
class ClaimResult:
    """The audit of one claim: its verdict, the one line that says why, and every comparison behind it."""

    id: str
    claim: str
    verdict: str = NOT_RUN
    why: str = ""
    checks: list[Check] = field(default_factory=list)
    note: str = ""
    source: str = ""  # where the paper states it, with the paper's version
    parts: tuple[str, ...] = ()
    premise: Check | None = None

    @property
    def ran_parts(self) -> list[str]:
        """The parts with at least one comparison that ran, in the claim's order."""
        ran = {c.part for c in self.checks if c.ran}
        return [p for p in self.parts if p in ran] + sorted(ran - set(self.parts))


def summary_text(values) -> str:
    """``mean ± sample std (n=k)`` of the finite values, or ``no finished run``."""
    s = summarize(values)
    if s.n == 0:
        return "no finished run"
    spread = "" if math.isnan(s.std) else f" ± {s.std:.3g}"
    return f"{s.mean:.4g}{spread} (n={s.n})"


def result_text(check: Check) -> str:
    """``estimate [95% CI low, high], method, n, p raw / Holm`` of a check, or why it has none."""
    r = check.result
    if r is None:
        return "not run"
    if not math.isfinite(r.p):
        return f"no test ({r.method}, n = {r.n_a}/{r.n_b})"
    return (f"{r.estimate:.4g} [95% CI {r.low:.4g}, {r.high:.4g}], {r.method}, n = {r.n}, "
            f"p = {r.p:.3g} raw / {check.p_adjusted:.3g} Holm")
