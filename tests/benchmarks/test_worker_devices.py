"""--workers N: spawned workers, each on its own GPU round-robin (CPU without GPUs)."""

import multiprocessing

import torch

from benchmarks.running import executors


def test_workers_take_the_gpus_round_robin_and_the_cpu_without_gpus():
    assert [executors.worker_device(slot, 2) for slot in range(5)] == [
        torch.device("cuda", i) for i in (0, 1, 0, 1, 0)]
    assert [executors.worker_device(slot, 3) for slot in (2, 3, 7)] == [torch.device("cuda", i) for i in (2, 0, 1)]
    assert executors.worker_device(4, 0) == torch.device("cpu")


def test_each_initialised_worker_takes_the_next_slot(monkeypatch):
    threads = torch.get_num_threads()
    monkeypatch.setattr(executors, "_worker_slot", executors._worker_slot)  # restored after the test
    slots = multiprocessing.get_context("spawn").Value("i", 0)
    taken = []
    try:
        for _ in range(3):
            executors._init_worker(1, slots)
            taken.append(executors._worker_slot)
    finally:
        torch.set_num_threads(threads)
    assert taken == [0, 1, 2] and slots.value == 3
