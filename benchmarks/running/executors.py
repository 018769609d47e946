"""Executors: how a list of run specs gets run. Each yields ``(run_id, status, error)`` as runs end.

* :class:`SequentialExecutor` (default) runs in this process and writes each run as it ends.
* :class:`PoolExecutor` (``--workers N``) uses N spawned processes; **each worker writes its own run** to the
  store (SQLite WAL + busy timeout make concurrent writers safe on one machine). Workers are spawned, never
  forked (a forked child of a process that initialised CUDA cannot use CUDA, and forking after torch started
  its thread pools is unsafe); worker k runs on GPU k modulo the visible GPUs, else on the CPU.
* :class:`RayExecutor` (``--backend ray``) submits one Ray task per run. It connects to ``RAY_ADDRESS`` when
  set, else starts a local instance. **The driver writes the store**: a task returns its RunRecord and the
  driver stores it, because cluster nodes need not share a filesystem and SQLite's WAL must not be used over
  a network filesystem. The cost: runs that ended but were not yet written when the driver is killed are
  run again. Checkpoints of a run live on the node that runs it (``OUT/checkpoints/<run_id>``).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Iterator, Sequence

import torch

from benchmarks.planning.run_spec import RunSpec
from benchmarks.running.runner import execute, finish
from benchmarks.store import Store

Outcome = tuple[str, str, "str | None"]


class SequentialExecutor:
    """Run specs one after another in this process."""

    def __init__(self, progress: bool = False):
        self.progress = progress

    def run(self, specs: Sequence[RunSpec], out: Path) -> Iterator[Outcome]:
        """Run each spec and write it to ``OUT/runs.sqlite`` as soon as it ends."""
        with Store(out / "runs.sqlite") as store:
            for spec in specs:
                record = execute(spec, out, progress=self.progress)
                finish(record, store, out)
                yield spec.run_id, record.status, record.error


_worker_slot = 0  # this worker's index among the pool's workers (set by _init_worker)


def _init_worker(threads: int, slots) -> None:
    """Pool initializer: take the next worker index from the shared counter ``slots``; set torch's threads."""
    global _worker_slot
    with slots.get_lock():
        _worker_slot = slots.value
        slots.value += 1
    torch.set_num_threads(threads)


def worker_device(slot: int, gpu_count: int) -> torch.device:
    """The device of worker ``slot``: the GPUs round-robin (``cuda:slot % gpu_count``), the CPU without GPUs."""
    return torch.device("cuda", slot % gpu_count) if gpu_count > 0 else torch.device("cpu")


def _run_in_worker(spec: RunSpec, out: str) -> Outcome:
    """:func:`benchmarks.running.runner.run_and_store` on this worker's device."""
    device = worker_device(_worker_slot, torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # code that says just "cuda" lands on this worker's GPU too
    record = execute(spec, Path(out), device=device)
    with Store(Path(out) / "runs.sqlite") as store:
        finish(record, store, Path(out))
    return spec.run_id, record.status, record.error


class PoolExecutor:
    """Run specs on ``workers`` spawned processes; each worker stores its own runs."""

    def __init__(self, workers: int):
        self.workers = workers

    def run(self, specs: Sequence[RunSpec], out: Path) -> Iterator[Outcome]:
        """Submit every spec; yield outcomes in completion order."""
        threads = max(1, (os.cpu_count() or 1) // self.workers)  # don't oversubscribe the cores
        context = multiprocessing.get_context("spawn")
        slots = context.Value("i", 0)
        with ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker,
                                 initargs=(threads, slots)) as pool:
            pending = {pool.submit(_run_in_worker, spec, str(out)) for spec in specs}
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            except BaseException:
                for future in pending:
                    future.cancel()
                raise


class RayExecutor:
    """Run specs as Ray tasks (one per run) on ``RAY_ADDRESS`` or a local instance; the driver stores them."""

    def __init__(self, num_cpus: int | None = None):
        self.num_cpus = num_cpus

    def run(self, specs: Sequence[RunSpec], out: Path) -> Iterator[Outcome]:
        """Submit every spec as a task; store each returned record as it arrives."""
        import ray

        repo_root = str(Path(__file__).resolve().parents[2])
        started_here = not ray.is_initialized()
        if started_here:
            if os.environ.get("RAY_ADDRESS"):
                # A remote cluster gets this checkout as the tasks' working directory.
                ray.init(runtime_env={"working_dir": repo_root,
                                      "excludes": [".venv", ".git", "results", ".cache", "*.sqlite*"]})
            else:
                path = os.pathsep.join(p for p in (repo_root, os.environ.get("PYTHONPATH")) if p)
                ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": {"PYTHONPATH": path}})
        try:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
            task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(execute)
            refs = {task.remote(spec, out): spec for spec in specs}
            with Store(out / "runs.sqlite") as store:
                while refs:
                    ready, _ = ray.wait(list(refs), num_returns=1)
                    spec = refs.pop(ready[0])
                    record = ray.get(ready[0])
                    finish(record, store, out)
                    yield spec.run_id, record.status, record.error
        finally:
            if started_here:
                ray.shutdown()


def make_executor(backend: str, workers: int | None, progress: bool = False):
    """The executor for ``--backend`` / ``--workers`` (None: the backend's default)."""
    if backend == "ray":
        return RayExecutor(num_cpus=workers)
    if workers and workers > 1:
        return PoolExecutor(workers)
    return SequentialExecutor(progress=progress)
