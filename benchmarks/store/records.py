"""What the runner hands the store: a :class:`RunRecord` and its :class:`Curve` s."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from benchmarks.planning.run_spec import RunSpec


@dataclass
class Curve:
    """One logged series: the steps it was logged at and the values (NaN kept)."""

    steps: np.ndarray
    values: np.ndarray


@dataclass
class RunRecord:
    """A finished, diverged or failed run as the runner produces it and the store writes it."""

    spec: RunSpec
    status: str
    metric: str
    higher_is_better: bool
    budget_unit: str
    metric_value: float | None = None
    final_metrics: dict = field(default_factory=dict)
    diverged_step: int | None = None
    error: str | None = None
    traceback: str | None = None
    info: dict = field(default_factory=dict)
    curves: dict[tuple[str, str], Curve] = field(default_factory=dict)  # (kind, name) -> Curve
    environment: dict = field(default_factory=dict)
    wall_seconds: float = 0.0
    started_at: str = ""
    finished_at: str = ""
    config: dict | None = None  # the config the run used (None: the spec's)
    budget: int | None = None  # the run length it used, the domain's budget field (None: the spec's)
