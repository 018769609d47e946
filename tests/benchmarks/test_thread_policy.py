"""The engine's thread policy as a pure function: OMP_NUM_THREADS wins, else the cores shared out."""

import pytest
import torch

from benchmarks.running.executors import threads_per_worker as exported
from benchmarks.running.threads import apply_thread_policy, threads_per_worker


@pytest.mark.parametrize("workers, cores, expected", [(1, 2, 2), (2, 2, 1), (3, 2, 1), (2, 16, 8), (3, 16, 5)])
def test_cores_are_shared_out_at_least_one_each(workers, cores, expected):
    assert threads_per_worker(workers, cores, environ={}) == expected


@pytest.mark.parametrize("value, expected", [("1", 1), ("3", 3), (" 4 ", 4), ("0", 8), ("", 8), ("many", 8)])
def test_omp_num_threads_wins_when_a_positive_integer(value, expected):
    assert threads_per_worker(2, 16, environ={"OMP_NUM_THREADS": value}) == expected


def test_bad_worker_count_is_refused_and_the_executors_use_this_policy():
    with pytest.raises(ValueError, match="workers"):
        threads_per_worker(0, 4, environ={})
    assert exported is threads_per_worker


def test_apply_sets_torch_threads():
    previous = torch.get_num_threads()
    try:
        assert apply_thread_policy(threads=1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)
