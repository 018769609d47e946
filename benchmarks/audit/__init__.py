"""The claims audit: the claims of :mod:`benchmarks.protocol.claims` checked against the stored runs.

* :mod:`~benchmarks.audit.claim` -- the vocabulary a claim is declared in (source, selection, parts, premise);
* :mod:`~benchmarks.audit.comparisons` -- the kinds of comparison, each a test;
* :mod:`~benchmarks.audit.grading` -- Holm's correction and the verdict rules;
* :mod:`~benchmarks.audit.verdicts` -- the result of one claim, as the report reads it;
* :mod:`~benchmarks.audit.auditor` -- selecting and grouping runs, and :func:`audit`.
"""

from benchmarks.audit.auditor import audit
from benchmarks.audit.grading import (
                                      INCONCLUSIVE,
                                      NOT_REPRODUCED,
                                      NOT_RUN,
                                      PARTIALLY_RUN,
                                      PREMISE_ABSENT,
                                      REGIME_NOT_REACHED,
                                      REPRODUCED,
                                      UNDERPOWERED,
                                      VERDICTS,
)
from benchmarks.audit.verdicts import ClaimResult

__all__ = ["INCONCLUSIVE", "NOT_REPRODUCED", "NOT_RUN", "PARTIALLY_RUN", "PREMISE_ABSENT", "REGIME_NOT_REACHED",
           "REPRODUCED", "UNDERPOWERED", "VERDICTS", "ClaimResult", "audit"]
