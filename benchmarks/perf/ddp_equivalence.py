"""Data-parallel LLaMA training equals single-process training (same code path, DDP on gloo/nccl).

Trains the ``llama`` domain's model for a few steps twice -- once in one process with the whole batch,
once on ``world`` ranks that each take their slice of the batch under DistributedDataParallel -- and
reports the largest parameter difference.

    python -m benchmarks.perf.ddp_equivalence                     # spawns 2 CPU ranks (gloo)
    torchrun --nproc_per_node 2 -m benchmarks.perf.ddp_equivalence   # the same under torchrun (nccl on GPUs)
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist

SMALL_RUN = {"size": "nano", "vocab_size": 1024, "seq_len": 64, "batch_size": 8, "steps": 4, "warmup": 1,
             "eval_tokens": 256}


class _NullLogger:
    def log_step(self, step, values): pass
    def log_eval(self, step, values): pass
    def log_info(self, **info): pass
    def snapshot(self): return {}
    def restore(self, snapshot): pass


def train_parameters(overrides: dict, recipe: str = "adam", seed: int = 0,
                     device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """Final parameters of a smoke-preset llama run with ``overrides`` (under DDP when initialised)."""
    import domains
    from benchmarks.protocol.hparams import default_hparams
    from domains.base import RunContext
    from domains.training.loop import train

    domain = domains.get("llama")
    config = domain.config("smoke", overrides)
    ctx = RunContext(recipe=recipe, hparams=default_hparams(domain, recipe, config), seed=seed, logger=_NullLogger(),
                     device=device or torch.device("cpu"))
    job = domain.build_job(config, ctx)
    train(job.model, job.batch_at, job.loss_fn, job.evaluate, job.loop, ctx)
    return {name: p.detach().cpu().clone() for name, p in job.model.named_parameters()}


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between two parameter sets with the same names."""
    return max(float((a[name] - b[name]).abs().max()) for name in a)


def _spawned_rank(rank: int, world: int, port: int, overrides: dict, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        params = train_parameters(overrides)
        if rank == 0:
            torch.save(params, out)
    finally:
        dist.destroy_process_group()


def spawn_data_parallel(world: int = 2, overrides: dict | None = None) -> dict[str, torch.Tensor]:
    """Final parameters of the run trained on ``world`` spawned CPU ranks (gloo)."""
    overrides = {**SMALL_RUN, **(overrides or {})}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "params.pt")
        torch.multiprocessing.spawn(_spawned_rank, args=(world, port, overrides, out), nprocs=world, join=True)
        return torch.load(out, weights_only=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=int, default=2, help="ranks to spawn when not under torchrun")
    args = parser.parse_args()
    if "RANK" in os.environ:  # under torchrun: every rank trains with DDP, rank 0 then trains the reference
        cuda = torch.cuda.is_available()
        dist.init_process_group("nccl" if cuda else "gloo")
        device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}") if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(device)
        parallel = train_parameters(SMALL_RUN, device=device)
        world = dist.get_world_size()
        dist.destroy_process_group()
        if int(os.environ["RANK"]) != 0:
            return
        single = train_parameters(SMALL_RUN, device=device)
    else:
        world = args.world
        parallel = spawn_data_parallel(world)
        single = train_parameters(SMALL_RUN)
    print(f"| ranks | steps | max abs parameter difference vs 1 process |\n|---|---|---|\n"
          f"| {world} | {SMALL_RUN['steps']} | {max_difference(parallel, single):.3g} |")


if __name__ == "__main__":
    main()
