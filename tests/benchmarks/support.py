"""Builders shared by the engine tests (this module holds no tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from benchmarks.planning import RunSpec
from benchmarks.store import Curve, RunRecord, Store

SERIES = ("loss", "lr", "grad_norm_before", "grad_norm_after", "clip_fraction", "reset", "tokens", "aux")


def make_spec(domain="quadratic", recipe="adam", seed=0, lr=1e-2, studies=("main",), **config) -> RunSpec:
    """A run spec with a small config (``config`` entries are added to it)."""
    cfg = {"steps": 100, **config}
    return RunSpec(domain=domain, preset="smoke", config=cfg, overrides=dict(config), recipe=recipe,
                   hparams={"lr": lr}, seed=seed, studies=tuple(studies))


def make_record(spec: RunSpec, value: float | None = 1.0, status: str = "finished", steps: int = 100,
                metric: str = "final_loss", higher_is_better: bool = False, grad_norms=None,
                budget: int | None = None) -> RunRecord:
    """A run record with ``len(SERIES)`` train curves of ``steps`` points and one eval point; ``budget`` None
    leaves the store's budget column empty (as in stores written before it held every run's length)."""
    rng = np.random.default_rng(spec.seed)
    curves = {("train", name): Curve(np.arange(steps), rng.random(steps)) for name in SERIES}
    if grad_norms is not None:
        curves[("train", "grad_norm_before")] = Curve(np.arange(len(grad_norms)), np.asarray(grad_norms, float))
    if value is not None:
        curves[("eval", metric)] = Curve(np.array([steps]), np.array([value]))
    return RunRecord(
        spec=spec, status=status, metric=metric, higher_is_better=higher_is_better, budget_unit="optimizer steps",
        metric_value=value if status == "finished" else None,
        final_metrics={metric: value} if status == "finished" else {},
        diverged_step=steps // 2 if status == "diverged" else None,
        error="boom" if status == "failed" else None, curves=curves,
        environment={"hostname": "test", "packages": {"numpy": np.__version__}, "device": "cpu"},
        wall_seconds=1.0, started_at="2025-01-01T00:00:00", finished_at="2025-01-01T00:00:01", budget=budget,
    )


def write_many(path: str, worker: int, count: int, steps: int = 2000) -> list[str]:
    """Write ``count`` runs (seeds worker*1000 + i) to the store at ``path``; returns their run_ids."""
    ids = []
    with Store(path) as store:
        for i in range(count):
            spec = make_spec(seed=worker * 1000 + i)
            store.write_run(make_record(spec, value=float(i), steps=steps))
            ids.append(spec.run_id)
    return ids



if __name__ == "__main__":  # writer loop for the kill test: python tests/benchmarks/support.py STORE
    store_path = sys.argv[1]
    with Store(Path(store_path)) as store:
        for i in range(10_000):
            store.write_run(make_record(make_spec(seed=i), value=float(i), steps=20_000))
