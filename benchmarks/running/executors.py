"""Executors: how a list of run specs gets run. Each yields an :class:`~benchmarks.running.runner.Outcome` as runs end.

* :class:`SequentialExecutor` (default) runs in this process and writes each run as it ends.
* :class:`PoolExecutor` (``--workers N``) uses N spawned processes; **each worker writes its own run** to the
  store (SQLite WAL + busy timeout make concurrent writers safe on one machine). Workers are spawned, never
  forked (a forked child of a process that initialised CUDA cannot use CUDA, and forking after torch started
  its thread pools is unsafe); worker k runs on GPU k modulo the visible GPUs, else on the CPU. A worker dies
  with the process that started it (:mod:`benchmarks.running.worker_exit`), so a killed suite leaves no
  worker training and storing on.
* :class:`RayExecutor` (``--backend ray``) submits one Ray task per run. It connects to ``RAY_ADDRESS`` when
  set, else starts a local instance. **The driver writes the store**: a task returns its RunRecord and the
  driver stores it, because cluster nodes need not share a filesystem and SQLite's WAL must not be used over
  a network filesystem. The cost: runs that ended but were not yet written when the driver is killed are
  run again. Checkpoints of a run live on the node that runs it (``OUT/checkpoints/<run_id>``).

Every executor runs a run only under its lock (:func:`benchmarks.running.runner.run_claimed`; the Ray driver
holds the locks of the tasks it submitted) and only when the store does not hold it with a status in ``skip``
by then; runs whose lock another process holds are put off to the end and waited for. So two suites on one
``--out`` run and store each run once.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Iterator, Sequence

import torch

from benchmarks.planning.run_spec import RunSpec
from benchmarks.running.runner import DONE, Outcome, execute, finish, outcome_of, run_claimed
from benchmarks.running.threads import apply_thread_policy, threads_per_worker
from benchmarks.running.worker_exit import die_with_parent
from benchmarks.store import RunLock, Store


class SequentialExecutor:
    """Run specs one after another in this process."""

    def __init__(self, progress: bool = False, tensorboard: Path | None = None, compile_model: bool = False):
        self.progress = progress
        self.tensorboard = tensorboard
        self.compile_model = compile_model

    def run(self, specs: Sequence[RunSpec], out: Path, skip: frozenset = DONE) -> Iterator[Outcome]:
        """Run each spec and write it to ``OUT/runs.sqlite`` as soon as it ends; runs another process holds
        are waited for after the others."""
        with Store(out / "runs.sqlite") as store:
            put_off = []
            for spec in specs:
                outcome = run_claimed(spec, out, store, skip=skip, wait=False, progress=self.progress,
                                      tensorboard=self.tensorboard, compile_model=self.compile_model)
                if outcome is None:
                    put_off.append(spec)
                else:
                    yield outcome
            for spec in put_off:
                yield run_claimed(spec, out, store, skip=skip, wait=True, progress=self.progress,
                                      tensorboard=self.tensorboard, compile_model=self.compile_model)


_worker_slot = 0  # this worker's index among the pool's workers (set by _init_worker)


def _init_worker(threads: int, slots, parent_pid: int | None = None) -> None:
    """Pool initializer: die with the parent (``parent_pid``; None: not armed); take the next worker index from
    the shared counter ``slots``; set torch's threads."""
    global _worker_slot
    if parent_pid is not None:
        die_with_parent(parent_pid)
    with slots.get_lock():
        _worker_slot = slots.value
        slots.value += 1
    apply_thread_policy(threads=threads)


def worker_device(slot: int, gpu_count: int) -> torch.device:
    """The device of worker ``slot``: the GPUs round-robin (``cuda:slot % gpu_count``), the CPU without GPUs."""
    return torch.device("cuda", slot % gpu_count) if gpu_count > 0 else torch.device("cpu")


def _run_in_worker(spec: RunSpec, out: str, skip: frozenset, wait_for_lock: bool,
                   tensorboard: str | None = None, compile_model: bool = False) -> Outcome | None:
    """:func:`benchmarks.running.runner.run_claimed` on this worker's device."""
    device = worker_device(_worker_slot, torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # code that says just "cuda" lands on this worker's GPU too
    with Store(Path(out) / "runs.sqlite") as store:
        return run_claimed(spec, Path(out), store, skip=skip, wait=wait_for_lock, device=device,
                           tensorboard=Path(tensorboard) if tensorboard else None, compile_model=compile_model)


class PoolExecutor:
    """Run specs on ``workers`` spawned processes; each worker stores its own runs."""

    def __init__(self, workers: int, tensorboard: Path | None = None, compile_model: bool = False):
        self.workers = workers
        self.tensorboard = tensorboard
        self.compile_model = compile_model

    def run(self, specs: Sequence[RunSpec], out: Path, skip: frozenset = DONE) -> Iterator[Outcome]:
        """Submit every spec; yield outcomes in completion order (runs another process holds: after the rest)."""
        threads = threads_per_worker(self.workers)  # don't oversubscribe the cores
        context = multiprocessing.get_context("spawn")
        slots = context.Value("i", 0)
        with ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker,
                                 initargs=(threads, slots, os.getpid())) as pool:
            board = str(self.tensorboard) if self.tensorboard else None

            def submit(spec: RunSpec, wait_for_lock: bool):
                return pool.submit(_run_in_worker, spec, str(out), skip, wait_for_lock, board, self.compile_model)

            pending = {submit(spec, False): spec for spec in specs}
            put_off: list[RunSpec] = []
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        spec = pending.pop(future)
                        outcome = future.result()
                        if outcome is not None:
                            yield outcome
                        else:
                            put_off.append(spec)
                    if not pending and put_off:  # every other run is done: wait for those another process holds
                        pending = {submit(spec, True): spec for spec in put_off}
                        put_off = []
            except BaseException:
                for future in pending:
                    future.cancel()
                raise


class RayExecutor:
    """Run specs as Ray tasks (one per run) on ``RAY_ADDRESS`` or a local instance; the driver stores them."""

    def __init__(self, num_cpus: int | None = None, tensorboard: Path | None = None, compile_model: bool = False):
        self.num_cpus = num_cpus
        self.tensorboard = tensorboard  # on the node that runs the task
        self.compile_model = compile_model

    def run(self, specs: Sequence[RunSpec], out: Path, skip: frozenset = DONE) -> Iterator[Outcome]:
        """Submit every spec as a task (holding its lock until it is stored); store each returned record as it
        arrives."""
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
        locks: dict[str, RunLock] = {}
        try:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
            task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(execute)
            with Store(out / "runs.sqlite") as store:
                refs, put_off = {}, []

                def submit(spec: RunSpec, wait_for_lock: bool) -> Outcome | None:
                    lock = RunLock(out, spec.run_id)
                    if not lock.acquire(wait=wait_for_lock):
                        put_off.append(spec)
                        return None
                    if store.status(spec.run_id) in skip:
                        lock.release()
                        return Outcome(spec.run_id, "stored", None)
                    locks[spec.run_id] = lock
                    refs[task.remote(spec, out, tensorboard=self.tensorboard, compile_model=self.compile_model)] = spec
                    return None

                for spec in specs:
                    if (outcome := submit(spec, False)) is not None:
                        yield outcome
                while refs or put_off:
                    if not refs:
                        if (outcome := submit(put_off.pop(0), True)) is not None:
                            yield outcome
                        continue
                    ready, _ = ray.wait(list(refs), num_returns=1)
                    spec = refs.pop(ready[0])
                    record = ray.get(ready[0])
                    finish(record, store, out)
                    locks.pop(spec.run_id).release()
                    yield outcome_of(record)
        finally:
            for lock in locks.values():
                lock.release()
            if started_here:
                ray.shutdown()


def make_executor(backend: str, workers: int | None, progress: bool = False, tensorboard: Path | None = None,
                  compile_model: bool = False):
    """The executor for ``--backend`` / ``--workers`` (None: the backend's default); ``tensorboard``: a folder
    every run also streams its curves to; ``compile_model``: runs train through ``torch.compile``."""
    if backend == "ray":
        return RayExecutor(num_cpus=workers, tensorboard=tensorboard, compile_model=compile_model)
    if workers and workers > 1:
        return PoolExecutor(workers, tensorboard=tensorboard, compile_model=compile_model)
    return SequentialExecutor(progress=progress, tensorboard=tensorboard, compile_model=compile_model)
