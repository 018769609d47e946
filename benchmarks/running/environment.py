"""Where a run ran: git commit, package versions, interpreter, hardware (stored with every run)."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "torch", "transformers", "numpy", "pandas", "tokenizers", "datasets", "stable-baselines3", "gymnasium",
    "mujoco", "lion-pytorch", "adam-mini", "ray",
)


@functools.lru_cache(maxsize=1)
def _static_environment() -> dict:
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": int(is_dirty()),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "packages": {name: _version(name) for name in PACKAGES if _version(name)},
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def is_dirty() -> bool:
    """Whether a tracked file outside ``results/`` differs from the commit. ``results/`` holds the stores and
    their outputs: a committed store that a run opens (and migrates) in a fresh checkout is data, not code."""
    return bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"))


def environment(device: torch.device) -> dict:
    """The environment record of a run on ``device`` (cached per process apart from the device)."""
    return {**_static_environment(), "device": str(device)}


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} logical cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} logical cores)"
