"""``did you mean``: the closest known names to a misspelled one (difflib), for one-line error messages."""

from __future__ import annotations

import difflib
from typing import Iterable

CUTOFF = 0.6  # difflib's similarity ratio below which a known name is not offered


def close_names(name: str, known: Iterable[str], count: int = 2) -> list[str]:
    """Up to ``count`` names of ``known`` that look like ``name``, closest first (case-insensitive)."""
    known = list(dict.fromkeys(known))
    by_lower = {k.lower(): k for k in known}
    return [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=count, cutoff=CUTOFF)]


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"``, ``" (did you mean 'x' or 'y'?)"``, or ``""`` when nothing is close."""
    matches = close_names(name, known)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(repr(m) for m in matches) + "?)"
