"""Run one :class:`RunSpec`: seed, pick the device, call the domain, turn the outcome into a RunRecord.

Divergence is data, not a crash: :class:`domains.base.Diverged` becomes ``status = diverged`` with the step;
any other exception becomes ``status = failed`` with a one-line error and the traceback. Only
KeyboardInterrupt/SystemExit escape, leaving the run's checkpoint folder for the next attempt.

Several processes may share one results folder (two suites on one ``--out``): :func:`run_claimed` runs a run
only under its :class:`~benchmarks.store.RunLock` and only when the store does not hold it yet, so a run is
run, checkpointed and stored by one process at a time.
"""

from __future__ import annotations

import os
import random
import shutil
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

import domains
from benchmarks.analysis.regime import baseline_metrics
from benchmarks.planning.domain_modules import import_domain_class
from benchmarks.planning.expansion import budget_field
from benchmarks.planning.run_spec import RunSpec, to_jsonable
from benchmarks.running.environment import environment
from benchmarks.running.machine_load import end_conditions, start_conditions
from benchmarks.running.progress import run_label
from benchmarks.running.run_logger import BufferedRunLogger
from benchmarks.running.tensorboard_logger import TensorBoardLogger, run_folder
from benchmarks.store import RunLock, RunRecord, Store
from domains.base import Diverged, Domain, RunContext


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(slot: int = 0) -> torch.device:
    """``cuda`` (GPU ``slot`` modulo the number of GPUs) when available, else ``cpu``."""
    if torch.cuda.is_available():
        return torch.device("cuda", slot % torch.cuda.device_count())
    return torch.device("cpu")


def checkpoint_dir(out: Path, run_id: str) -> Path:
    """The run's scratch folder ``OUT/checkpoints/<run_id>/`` (removed once the run is stored)."""
    return Path(out) / "checkpoints" / run_id


def resolve_domain(spec: RunSpec) -> Domain:
    """The spec's domain adapter; imports ``spec.domain_class`` when this process has not registered it."""
    try:
        return domains.get(spec.domain)
    except ValueError:
        if not spec.domain_class:
            raise
    if spec.domain not in domains.available():  # loading a user's file registers the domain itself
        cls = import_domain_class(spec.domain_class)
        if spec.domain not in domains.available():
            domains.register(cls)
    return domains.get(spec.domain)


def execute(spec: RunSpec, out: Path, *, progress: bool = False, device: torch.device | None = None,
            tensorboard: Path | None = None, compile_model: bool = False) -> RunRecord:
    """Train and evaluate ``spec`` once and return its record (never raises for a diverged/failed run).

    The record's ``info`` holds what the domain logged plus the timing conditions (machine load at start and
    end, torch threads, cores: :mod:`benchmarks.running.machine_load`). With ``tensorboard`` a folder, every
    logged record is also streamed to TensorBoard event files under it. ``compile_model``: train through
    ``torch.compile`` where the domain's loop can (the run's info then says ``compiled``).
    """
    domain = resolve_domain(spec)
    device = device or pick_device()
    conditions = start_conditions()
    logger = BufferedRunLogger()
    if tensorboard is not None:
        logger = TensorBoardLogger(logger, run_folder(tensorboard, spec), info={
            "domain": spec.domain, "recipe": spec.recipe, "hparams": dict(spec.hparams), "seed": spec.seed,
            "config": dict(spec.overrides), "run_id": spec.run_id})
    record = RunRecord(
        spec=spec, status="failed", metric=domain.metric, higher_is_better=domain.higher_is_better,
        budget_unit=domain.budget_unit, environment=environment(device),
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        budget=spec.budget if spec.budget is not None else spec.config.get(budget_field(domain)),
    )
    clock = time.perf_counter()
    config = None
    try:
        seed_everything(spec.seed)
        config = domain.config(spec.preset, spec.overrides)  # the budget, if any, is one of the overrides
        record.config = to_jsonable(config)
        record.budget = getattr(config, budget_field(domain), None)  # None: a domain without a run length
        ctx = RunContext(recipe=spec.recipe, hparams=dict(spec.hparams), seed=spec.seed, logger=logger,
                         device=device, workdir=checkpoint_dir(out, spec.run_id), progress=progress,
                         progress_label=run_label(spec), compile=compile_model)
        metrics = domain.run(config, ctx)
        if domain.metric not in metrics:
            raise KeyError(f"domain {domain.name!r} returned no {domain.metric!r} (got {', '.join(metrics)})")
        record.status = "finished"
        record.final_metrics = {key: float(value) for key, value in metrics.items()}
        record.metric_value = record.final_metrics[domain.metric]
    except Diverged as exc:
        record.status = "diverged"
        record.diverged_step = int(exc.step)
        record.error = _one_line(exc.reason)
    except Exception as exc:  # a crashing run is recorded, the sweep goes on
        record.status = "failed"
        record.error = _one_line(f"{type(exc).__name__}: {exc}")
        record.traceback = traceback.format_exc()
    record.wall_seconds = time.perf_counter() - clock
    if config is not None and record.status != "failed":
        _store_baselines(domain, config, spec.seed, record, logger)
    record.finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record.info = to_jsonable({**logger.info, **conditions, **end_conditions()})
    record.curves = logger.curves()
    if tensorboard is not None:
        logger.close()
    return record


def _store_baselines(domain: Domain, config, seed: int, record: RunRecord, logger: BufferedRunLogger) -> None:
    """Add the domain's trivial baselines (:meth:`Domain.baselines`) to the record's final metrics as
    ``baseline/<name>`` (the regime gate, :mod:`benchmarks.analysis.regime`); computed after the clock stops.
    A failure is noted in the run's info and leaves the run's regime unknown; it never fails the run."""
    try:
        record.final_metrics.update(baseline_metrics(domain.baselines(config, seed)))
    except Exception as exc:  # noqa: BLE001 -- a baseline is a report aid, not part of the run
        logger.log_info(baselines_error=_one_line(f"{type(exc).__name__}: {exc}"))


def finish(record: RunRecord, store: Store, out: Path) -> None:
    """Write ``record`` to the store, then drop the run's checkpoint folder (not before: a kill in between
    leaves the checkpoint, and the re-run finds the run already stored). The caller holds the run's lock, so
    no other process is using that folder."""
    store.write_run(record)
    shutil.rmtree(checkpoint_dir(out, record.spec.run_id), ignore_errors=True)


DONE = frozenset({"finished", "diverged", "failed"})  # stored statuses a suite skips (without --retry-failed)
class Outcome(NamedTuple):
    """What an executor reports as a run ends (the run itself is in the store by then); status ``"stored"``:
    another process stored it meanwhile."""

    run_id: str
    status: str
    error: str | None
    metric: str | None = None
    metric_value: float | None = None
    wall_seconds: float | None = None


def outcome_of(record: RunRecord) -> Outcome:
    """The :class:`Outcome` of a stored RunRecord."""
    return Outcome(record.spec.run_id, record.status, record.error, record.metric, record.metric_value,
                   record.wall_seconds)


def run_claimed(spec: RunSpec, out: Path, store: Store, *, skip: frozenset = DONE, wait: bool,
                progress: bool = False, device: torch.device | None = None,
                tensorboard: Path | None = None, compile_model: bool = False) -> Outcome | None:
    """Run ``spec`` and store it, holding its lock; None (nothing done) when another process holds the lock and
    ``wait`` is False. A run that the store holds with a status in ``skip`` once the lock is taken is not run
    again: its outcome is ``(run_id, "stored", None)``."""
    with RunLock(out, spec.run_id) as lock:
        if not lock.acquire(wait=wait):
            return None
        if store.status(spec.run_id) in skip:
            return Outcome(spec.run_id, "stored", None)
        record = execute(spec, out, progress=progress, device=device, tensorboard=tensorboard,
                         compile_model=compile_model)
        finish(record, store, out)
        return outcome_of(record)


def run_and_store(spec: RunSpec, out: str | os.PathLike, progress: bool = False) -> tuple[str, str, str | None]:
    """Execute one run (waiting for its lock) and write it to ``OUT/runs.sqlite``; returns (run_id, status, error)."""
    out = Path(out)
    with Store(out / "runs.sqlite") as store:
        return run_claimed(spec, out, store, skip=frozenset(), wait=True, progress=progress)


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
