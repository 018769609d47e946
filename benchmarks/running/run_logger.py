"""The engine's :class:`domains.base.RunLogger`: buffers everything in memory; the store writes it once."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from benchmarks.planning.run_spec import to_jsonable
from benchmarks.store import Curve


class BufferedRunLogger:
    """Collects per-step telemetry, evaluations and run info in plain lists (cheap on the hot path).

    Nothing touches the disk while the run trains: the runner turns the buffers into curves
    (:meth:`curves`) and writes them with the run in one transaction. :meth:`snapshot` / :meth:`restore`
    carry the buffers through a checkpoint (plain lists, loadable with ``torch.load(weights_only=True)``).
    """

    def __init__(self) -> None:
        self._series: dict[str, dict[str, tuple[list[int], list[float]]]] = {"train": {}, "eval": {}}
        self.info: dict[str, Any] = {}

    def _append(self, kind: str, step: int, values: Mapping[str, float]) -> None:
        series = self._series[kind]
        step = int(step)
        for name, value in values.items():
            entry = series.get(name)
            if entry is None:
                entry = series[name] = ([], [])
            entry[0].append(step)
            entry[1].append(float(value))

    def log_step(self, step: int, values: Mapping[str, float]) -> None:
        """Record per-step training telemetry (loss, lr, gradient norms, ...)."""
        self._append("train", step, values)

    def log_eval(self, step: int, values: Mapping[str, float]) -> None:
        """Record evaluation metrics measured at ``step``."""
        self._append("eval", step, values)

    def log_info(self, **info: Any) -> None:
        """Record free-form run metadata (converted to JSON values)."""
        self.info.update({key: to_jsonable(value) for key, value in info.items()})

    def snapshot(self) -> dict:
        """All buffers as plain containers, for a checkpoint."""
        return {
            "series": {kind: {name: [list(steps), list(vals)] for name, (steps, vals) in series.items()}
                       for kind, series in self._series.items()},
            "info": dict(self.info),
        }

    def restore(self, snapshot: dict) -> None:
        """Replace the buffers with a :meth:`snapshot` (resuming from a checkpoint)."""
        self._series = {kind: {} for kind in ("train", "eval")}
        for kind, series in snapshot.get("series", {}).items():
            for name, (steps, vals) in series.items():
                self._series[kind][name] = ([int(s) for s in steps], [float(v) for v in vals])
        self.info = dict(snapshot.get("info", {}))

    def curves(self) -> dict[tuple[str, str], Curve]:
        """(kind, name) -> Curve of everything logged."""
        return {
            (kind, name): Curve(np.asarray(steps, dtype=np.int64), np.asarray(vals, dtype=np.float64))
            for kind, series in self._series.items()
            for name, (steps, vals) in series.items()
        }

