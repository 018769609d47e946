"""Verified cache entries of the text pipeline (tokenizers, token blocks) under the suite's cache folder.

An entry is a folder built in a temporary place and moved into position in one rename, with a ``meta.json``
(written last) that lists the SHA-256 of every file. An entry whose files do not match is never trusted: it is
rebuilt. Several processes may build the same entry at once; the first good copy wins.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from domains.pypi_sdist import DataUnavailable


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _publish(build: Callable[[Path], dict], target: Path) -> None:
    """Build a cache entry in a temporary folder, record the checksums of its files, move it into place.

    ``build(folder)`` writes the files and returns extra metadata; ``meta.json`` (written last) lists
    every file's SHA-256, so an entry without a valid ``meta.json`` is never trusted.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        extra = build(tmp)
        files = {str(p.relative_to(tmp)): _sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        (tmp / "meta.json").write_text(json.dumps({"files": files, **extra}, indent=1, sort_keys=True))
        if _verified_meta(target) is not None:  # another process published a good copy meanwhile
            return
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        with contextlib.suppress(OSError):  # lost a race to another process's good copy
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _verified_meta(target: Path) -> dict | None:
    """The entry's metadata if every file it lists is present with the recorded checksum, else None."""
    try:
        meta = json.loads((target / "meta.json").read_text())
        files = meta["files"]
        if all(_sha256_file(target / name) == digest for name, digest in files.items()):
            return meta
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def cached_entry(target: Path, build: Callable[[Path], dict]) -> dict:
    """Metadata of a verified cache entry at ``target``, (re)building it when missing or corrupt."""
    meta = _verified_meta(target)
    if meta is None:
        _publish(build, target)
        meta = _verified_meta(target)
        if meta is None:
            raise DataUnavailable(f"could not write a valid cache entry at {target}")
    return meta
