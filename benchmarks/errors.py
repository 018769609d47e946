"""The engine's user-facing error types, and the one way a value is shown in an error message."""

from __future__ import annotations

import reprlib
from typing import Any

_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 4
_SHORT.maxlevel = 2
MAX_REPR = 100  # characters of a value shown in a message


class BadInput(Exception):
    """Bad user input (unknown name, invalid value, malformed suite file, ...).

    The message is one line naming the problem; the CLI prints it and exits with code 2 before anything is
    written.
    """


class StoreUnusable(BadInput):
    """The results store at ``--out`` cannot be used (corrupt, empty, read-only, ...).

    The message is one line naming the file and a way out; the CLI exits with code 2 (the folder the user named
    holds something this code will not write into), and no run is started.
    """


def short_repr(value: Any) -> str:
    """``repr(value)`` bounded in length and depth (``[1, 2, 3, 4, 5, 6, ...]``): error messages never print an
    expanded value in full (a YAML alias bomb is a few hundred bytes that expand to gigabytes)."""
    text = " ".join(_SHORT.repr(value).split())
    return text if len(text) <= MAX_REPR else text[:MAX_REPR - 3] + "..."
