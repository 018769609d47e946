"""The paper's protocol as data, in one place: the studies each built-in domain runs
(:mod:`~benchmarks.protocol.studies`) and the claims C1-C14 the audit checks (:mod:`~benchmarks.protocol.claims`).

A change of protocol (a new LR grid, another seed count, a claim's selection) is an edit of this package only.
A user's domain declares its own studies with ``Domain.studies()``.
"""

from __future__ import annotations

from typing import Mapping

from benchmarks.protocol.studies import PAPER_STUDIES, Studies
from domains.base import Domain

__all__ = ["PAPER_STUDIES", "studies_for"]


def studies_for(domain: Domain) -> Studies:
    """Study -> preset -> StudySpec of ``domain``: the protocol's for a built-in domain of the paper, else the
    domain's own ``studies()``."""
    declared: Mapping | None = PAPER_STUDIES.get(domain.name)
    return declared if declared is not None else domain.studies()
