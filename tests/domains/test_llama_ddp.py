"""Data-parallel llama training (2 CPU ranks, gloo, half the batch each) equals one process."""

import torch

import domains
from benchmarks.perf.ddp_equivalence import SMALL_RUN, max_difference, spawn_data_parallel, train_parameters
from benchmarks.protocol.hparams import default_hparams


def test_two_ranks_with_half_the_batch_end_with_the_same_parameters_as_one_process():
    parallel = spawn_data_parallel(world=2)
    single = train_parameters(SMALL_RUN)
    half_batch = train_parameters({**SMALL_RUN, "batch_size": SMALL_RUN["batch_size"] // 2})
    llama = domains.get("llama")
    lr = default_hparams(llama, "adam", llama.config("smoke", SMALL_RUN))["lr"]
    assert parallel.keys() == single.keys()
    assert all(torch.isfinite(p).all() for p in parallel.values())
    # Adam moves a weight by up to ~lr per step; summation-order rounding may differ by a sliver of that
    assert max_difference(parallel, single) < 0.01 * lr
    assert max_difference(half_batch, single) > 0.5 * lr  # one rank's half alone ends visibly elsewhere
