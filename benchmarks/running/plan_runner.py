"""The engine's one entry point: :func:`run_plan` runs the runs of a plan that the store does not hold yet,
then rebuilds the outputs. The command line (:mod:`benchmarks.cli`) and the tests call it alike.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.errors import BadInput
from benchmarks.planning import Plan, SuiteRequest, plan_suite
from benchmarks.running.executors import make_executor
from benchmarks.running.machine_load import load_average, oversubscription_warning
from benchmarks.running.progress import RunLines
from benchmarks.running.runner import checkpoint_dir
from benchmarks.running.threads import threads_per_worker
from benchmarks.store import STATUSES, RunLock, Store

BACKENDS = ("local", "ray")


@dataclass
class PlanResult:
    """What :func:`run_plan` did: the plan, where, how many runs were already stored, and every run's stored row
    (nothing when it was a dry run)."""

    plan: Plan
    out: Path
    already_stored: int = 0
    rows: list[dict] = field(default_factory=list)  # the plan's runs as stored (Store.runs() rows)
    outputs: list[Path] = field(default_factory=list)  # files rebuilt under out

    @property
    def counts(self) -> dict[str, int]:
        """status -> number of the plan's stored runs."""
        counts = Counter(row["status"] for row in self.rows)
        return {status: counts.get(status, 0) for status in STATUSES}

    @property
    def failed(self) -> list[dict]:
        """The plan's runs stored as failed."""
        return [row for row in self.rows if row["status"] == "failed"]


def run_plan(plan: Plan | SuiteRequest, out: str | Path, *, backend: str = "local", workers: int | None = None,
             retry_failed: bool = False, dry_run: bool = False, outputs: bool = True,
             progress: bool | None = None, tensorboard: str | Path | None = None,
             compile_model: bool = False) -> PlanResult:
    """Run the runs of ``plan`` (a :class:`Plan`, or a request to plan first) that ``OUT/runs.sqlite`` does not
    hold, then rebuild tables, plots and report (unless ``outputs`` is False).

    Stored runs are skipped: finished and diverged ones always, failed ones unless ``retry_failed``. ``backend``
    ``local`` runs in this process (``workers`` None or 1) or a process pool (``workers`` N); ``ray`` on
    ``$RAY_ADDRESS`` or a local Ray instance. ``progress``: per-step bars (None: when stderr is a terminal and
    runs happen in this process); whatever it is, one line per finished run goes to stderr, flushed
    (:mod:`benchmarks.running.progress`). ``tensorboard``: a folder every run also streams its curves to.
    ``compile_model``: the supervised domains train through ``torch.compile`` (not part of a run's identity: a
    stored eager run is not run again). A dry run plans and validates only. BadInput on any invalid input, before the store is touched.
    """
    if backend not in BACKENDS:
        raise BadInput(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if workers is not None and workers < 1:
        raise BadInput(f"--workers must be at least 1, got {workers}")
    plan = plan if isinstance(plan, Plan) else plan_suite(plan)
    out = Path(out)
    if tensorboard is not None:
        _check_tensorboard()
        tensorboard = Path(tensorboard)
    if dry_run:
        return PlanResult(plan, out)

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"--out {out}: cannot create the results folder ({exc.strerror or exc})") from None
    with Store(out / "runs.sqlite") as store:
        stored = store.statuses()
        skip = frozenset({"finished", "diverged"} | (set() if retry_failed else {"failed"}))
        todo = [spec for spec in plan.specs if stored.get(spec.run_id) not in skip]
        store.add_studies((study, spec.run_id) for spec in plan.specs if spec.run_id in stored for study in spec.studies)
    for spec in plan.specs:  # a kill between storing a run and removing its checkpoint leaves the folder behind
        if stored.get(spec.run_id) in skip:
            _remove_leftover_checkpoint(out, spec.run_id)
    already = len(plan.specs) - len(todo)
    print(f"{len(plan.specs)} run(s) in the suite: {already} already stored, {len(todo)} to run "
          f"(backend {backend}, workers {workers or 'default'}); results in {out}", file=sys.stderr)
    if todo and backend == "local":
        pool = workers or 1
        warning = oversubscription_warning(load_average(), os.cpu_count(), pool,
                                           threads_per_worker(pool) if pool > 1 else torch_threads())
        if warning:
            print(warning, file=sys.stderr, flush=True)
    if progress is None:
        progress = backend == "local" and (workers or 1) == 1 and sys.stderr.isatty()
    meanwhile = _drive(make_executor(backend, workers, progress=progress, tensorboard=tensorboard,
                                     compile_model=compile_model), todo, out, skip)
    if meanwhile:
        print(f"{meanwhile} run(s) were stored meanwhile by another process using {out}", file=sys.stderr)
    written = []
    if outputs:
        from benchmarks.outputs.report import build_outputs

        written = build_outputs(out)
    wanted = {spec.run_id for spec in plan.specs}
    with Store(out / "runs.sqlite") as store:
        rows = [row for row in store.runs() if row["run_id"] in wanted]
    return PlanResult(plan, out, already, rows, written)


def _remove_leftover_checkpoint(out: Path, run_id: str) -> None:
    """Delete the checkpoint folder of a stored run, unless another process holds the run (``--retry-failed``
    there may be running it again)."""
    if not checkpoint_dir(out, run_id).exists():
        return
    with RunLock(out, run_id) as lock:
        if lock.acquire(wait=False):
            shutil.rmtree(checkpoint_dir(out, run_id), ignore_errors=True)


def _drive(executor, todo, out: Path, skip: frozenset) -> int:
    """Run ``todo`` with ``executor``; returns how many of them another process stored meanwhile."""
    from tqdm.auto import tqdm

    meanwhile = 0
    with tqdm(total=len(todo), desc="runs", unit="run", disable=None, dynamic_ncols=True) as bar:
        lines = RunLines(todo, stream=sys.stderr, write=bar.write)
        for outcome in executor.run(todo, out, skip):
            bar.update(1)
            meanwhile += outcome.status == "stored"
            lines.report(outcome.run_id, outcome.status, outcome.metric, outcome.metric_value, outcome.wall_seconds,
                         outcome.error)
    return meanwhile


def _check_tensorboard() -> None:
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401  (needs the tensorboard package)
    except ImportError:
        raise BadInput("--tensorboard needs the tensorboard package (pip install tensorboard==2.21.0)") from None


def torch_threads() -> int:
    """The torch threads a run in this process uses."""
    import torch

    return torch.get_num_threads()
