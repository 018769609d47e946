"""The conditions a run was timed under: the machine's load average and the threads torch ran with.

Stored in every run's ``info`` (``load_start``, ``load_end``, ``torch_threads``, ``cpu_count``), so a wall time
can be read with its conditions; :func:`oversubscription_warning` says when timings are not to be trusted.
"""

from __future__ import annotations

import os

import torch


def load_average() -> float | None:
    """The 1-minute load average (None where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def start_conditions() -> dict:
    """``load_start``, ``torch_threads`` and ``cpu_count`` now (call when a run starts)."""
    return {"load_start": load_average(), "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}


def end_conditions() -> dict:
    """``load_end`` now (call when a run ends)."""
    return {"load_end": load_average()}


def oversubscribed(load: float | None, cpu_count: int | None) -> bool:
    """Whether a load average exceeds the logical cores (runs then wait for a core and wall times stretch)."""
    return load is not None and bool(cpu_count) and load > cpu_count


def oversubscription_warning(load: float | None, cpu_count: int | None, workers: int, threads: int) -> str | None:
    """A one-line warning when the machine is already busier than its cores before a suite starts (or the suite
    will make it so: ``workers`` processes of ``threads`` torch threads each), else None."""
    if not cpu_count:
        return None
    wanted = workers * threads
    if oversubscribed(load, cpu_count):
        return (f"warning: the machine is oversubscribed (load {load:.1f} on {cpu_count} cores) before the suite "
                f"starts: wall times will be long and noisy (each run stores its load; compare CPU-bound timings "
                f"only from a quiet machine)")
    if wanted > cpu_count:
        return (f"warning: {workers} worker(s) x {threads} torch thread(s) = {wanted} > {cpu_count} cores: runs will "
                f"wait for cores and their wall times stretch")
    return None
