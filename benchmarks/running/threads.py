"""The engine's thread policy: how many torch threads each run process uses (the one place that decides).

Rule: ``OMP_NUM_THREADS`` when it is set to a positive integer (the user's word wins, per process); otherwise the
cores shared out among the worker processes, ``cores // workers``, at least one. Why not more: on CPU a training
step of the small presets is mostly memory-bound element-wise work and short matmuls, so threads beyond a core
each only contend (measured in issue 16: two busy cores shared by more threads than cores thrash); and N workers
of one thread each keep N cores busy with independent runs, which scales better than one run on N threads.
"""

from __future__ import annotations

import os
from typing import Mapping


def threads_per_worker(workers: int, cores: int | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Torch threads for each of ``workers`` processes on ``cores`` cores (default: this machine's).

    ``OMP_NUM_THREADS`` in ``environ`` (default: ``os.environ``) wins when it is a positive integer; else
    ``max(1, cores // workers)``. Raises ValueError for ``workers < 1``.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    environ = os.environ if environ is None else environ
    requested = environ.get("OMP_NUM_THREADS", "").strip()
    if requested.isdigit() and int(requested) > 0:
        return int(requested)
    cores = (os.cpu_count() or 1) if cores is None else cores
    return max(1, cores // workers)


def apply_thread_policy(workers: int = 1, threads: int | None = None) -> int:
    """Set this process's torch threads to ``threads`` or, when None, :func:`threads_per_worker` (``workers``);
    return the count set."""
    import torch

    count = threads if threads else threads_per_worker(workers)
    torch.set_num_threads(count)
    return count
