"""The vocabulary a claim is declared in (:mod:`benchmarks.protocol.claims` holds the claims themselves)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from benchmarks.audit.auditor import Auditor
    from benchmarks.audit.grading import Check as TestedCheck

# The paper's versions (SPEC §4) and the files in /work/shared that hold them.
PAPER_VERSIONS = {
    "arXiv": "paper-stable-spam-arxiv.md",
    "review": "paper-stable-spam-review.md",
    "thesis": "thesis-stable-spam-zh.md",
}


@dataclass(frozen=True)
class Source:
    """Where the paper states a claim: a table or figure of one version of the paper."""

    where: str  # "Table 1", "Fig. 2", "Table 4.2"
    version: str  # a key of PAPER_VERSIONS

    def __post_init__(self):
        if self.version not in PAPER_VERSIONS:
            raise ValueError(f"unknown paper version {self.version!r} (known: {', '.join(PAPER_VERSIONS)})")

    def text(self) -> str:
        """``Table 1 (arXiv version)``."""
        return f"{self.where} ({self.version} version)"


@dataclass(frozen=True)
class Selection:
    """The runs a claim is checked on: one domain's runs at each recipe's default hyper-parameters, optionally
    only some recipes and only some values of config fields."""

    domain: str
    recipes: tuple[str, ...] | None = None
    config: Mapping[str, tuple] = field(default_factory=dict)  # config field -> allowed values


class Check(Protocol):
    """A kind of comparison (:mod:`benchmarks.audit.comparisons`): the tested comparisons it makes on a claim's
    runs, each naming the part of the claim it covers."""

    def check(self, auditor: "Auditor", runs: "pd.DataFrame") -> "list[TestedCheck]":
        """The comparisons made on ``runs`` (possibly empty: then usually none)."""


@dataclass(frozen=True)
class Premise:
    """What a claim presumes: ``recipe`` at each of ``values`` of ``field`` is worse than at ``reference``
    values (4-bit Adam worse than 16-bit Adam). Checked on the claim's domain, each at its best LR."""

    field: str
    recipe: str
    values: tuple
    reference: tuple


@dataclass(frozen=True)
class Claim:
    """One claim of the paper: what it says, where, which runs check it and how."""

    id: str
    text: str
    sources: tuple[Source, ...]
    selection: Selection
    checks: tuple[Check, ...]
    note: str = ""
    # The parts the claim speaks of (rivals, precisions, environments ...), as the comparisons name them; a
    # claim is "partially run (k of m)" when only k of them ran. Empty: one part per comparison that ran.
    parts: tuple[str, ...] = ()
    premise: Premise | None = None
    # part -> the paper's effect relative to the rival's value, oriented so a negative value supports the
    # claim (for the power estimate; absent parts have none).
    paper_effects: Mapping[str, float] = field(default_factory=dict)

    def source_text(self) -> str:
        """``Fig. 2 (arXiv version)``, several joined with ``; ``."""
        return "; ".join(source.text() for source in self.sources)
