"""The claims audit: the claims of :mod:`benchmarks.protocol.claims` checked against the stored runs.

* :mod:`~benchmarks.audit.claim` -- the vocabulary a claim is declared in (source, selection, checks);
* :mod:`~benchmarks.audit.comparisons` -- the kinds of comparison;
* :mod:`~benchmarks.audit.verdicts` -- the verdict rules;
* :mod:`~benchmarks.audit.auditor` -- selecting and grouping runs, and :func:`audit`.
"""

from benchmarks.audit.auditor import audit
from benchmarks.audit.verdicts import INCONCLUSIVE, NOT_REPRODUCED, NOT_RUN, REPRODUCED, ClaimResult, Comparison

__all__ = ["INCONCLUSIVE", "NOT_REPRODUCED", "NOT_RUN", "REPRODUCED", "ClaimResult", "Comparison", "audit"]
