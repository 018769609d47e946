"""Progress that reads well in a log: one flushed line per finished run, whatever the executor.

    [12/44] llama int4 adam seed 0: val_ppl 156.0, 36 s (elapsed 6 min, about 9 min left)

The per-step bar of a run (a terminal only, one run at a time) is labelled with :func:`run_label`.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Mapping, TextIO

from benchmarks.outputs.numbers import plain
from benchmarks.planning.run_spec import RunSpec


def grid_point_text(overrides: Mapping[str, Any]) -> str:
    """The grid point of a run in a few characters: text values as they are (``int4``, ``Hopper``), numbers
    as ``field=value`` (``severity=2``)."""
    parts = []
    for key, value in overrides.items():
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, float):
            parts.append(f"{key}={value:g}")
        else:
            parts.append(f"{key}={value}")
    return " ".join(parts)


def run_label(spec: RunSpec) -> str:
    """``domain [grid point] recipe[variant] [lr=...] seed N``: who a run is, in one line."""
    recipe = spec.recipe + (f"[{spec.variant}]" if spec.variant else "")
    parts = [spec.domain, grid_point_text(spec.overrides), recipe]
    return " ".join(p for p in parts if p) + f" seed {spec.seed}"


def duration_text(seconds: float) -> str:
    """``0.4 s``, ``36 s``, ``4.2 min``, ``1.5 h``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class RunLines:
    """Prints one flushed line per finished run to ``stream`` (stderr by default), with the suite's count,
    elapsed time and an estimate of the time left (runs left x the mean time per finished run so far)."""

    def __init__(self, specs: list[RunSpec], stream: TextIO | None = None, write=None):
        self.by_id = {spec.run_id: spec for spec in specs}
        self.total, self.done = len(specs), 0
        self.stream = stream
        self.write = write  # e.g. tqdm.write, so lines do not break a live bar
        self.started = time.perf_counter()

    def line(self, run_id: str, status: str, metric: str | None, value: float | None, seconds: float | None,
             error: str | None = None) -> str:
        """The line of one finished run (and count it)."""
        self.done += 1
        spec = self.by_id.get(run_id)
        who = run_label(spec) if spec is not None else run_id
        if status == "finished":
            what = f"{metric} {plain(value)}" if metric else "finished"
        elif status == "diverged":
            what = "diverged" + (f" ({error})" if error else "")
        else:
            what = "FAILED" + (f": {error}" if error else "")
        took = f", {duration_text(seconds)}" if seconds is not None else ""
        elapsed = time.perf_counter() - self.started
        left = self.total - self.done
        eta = f", about {duration_text(elapsed / self.done * left)} left" if left else ""
        return f"[{self.done}/{self.total}] {who}: {what}{took} (elapsed {duration_text(elapsed)}{eta})"

    def report(self, run_id: str, status: str, metric: str | None, value: float | None, seconds: float | None,
               error: str | None = None) -> None:
        """Print :meth:`line` and flush, so a redirected log shows it at once."""
        text = self.line(run_id, status, metric, value, seconds, error)
        stream = self.stream or sys.stderr
        if self.write is not None:
            self.write(text, file=stream)
        else:
            print(text, file=stream)
        stream.flush()
