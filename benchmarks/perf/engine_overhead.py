"""How much the engine adds to a bare training loop (SPEC §5 target: under 5%).

    python -m benchmarks.perf.engine_overhead [--recipe adam] [--steps 200] [--repeats 5] [--hidden 192] [--threads 1]

The same model (a small ``transformers.LlamaForCausalLM`` on random tokens), optimizer, LR schedule, batches
and final evaluation are run two ways, interleaved in one process so both see the same machine state:

* **bare**: a hand-written loop -- zero_grad, forward, backward, ``optimizer.step()``, the warm-up + cosine LR
  schedule, ``float(loss)`` every step (any real loop watches its loss), one evaluation at the end;
* **engine**: :func:`benchmarks.running.runner.execute` + :func:`benchmarks.running.runner.finish` -- seeding, the shared
  trainer (per-step telemetry with the optimizer's stats, divergence checks, the logger) and the SQLite write of
  the run with all its curves.

Each way runs once as warm-up, then ``--repeats`` times; the ratio of the medians is reported, for wall time and
for this process's CPU time (the one to trust when other processes share the machine). Both ways reach the
same validation loss, bit for bit: the engine trains exactly what the bare loop trains.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import domains
import optimizers
from benchmarks.planning import RunSpec
from benchmarks.running.runner import execute, finish, seed_everything
from benchmarks.store import Store
from domains.base import Domain, RunContext
from domains.training.loop import TrainLoop, lr_factor, train


@dataclass
class TinyLlamaConfig:
    """A LLaMA small enough for a CPU, big enough that a step is a realistic amount of work."""

    hidden: int = 192
    layers: int = 2
    heads: int = 4
    vocab: int = 2048
    seq_len: int = 128
    batch: int = 8
    steps: int = 200


def build_model(config: TinyLlamaConfig, seed: int) -> torch.nn.Module:
    """The model, initialised from ``seed``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=config.vocab, hidden_size=config.hidden, intermediate_size=int(config.hidden * 8 / 3),
        num_hidden_layers=config.layers, num_attention_heads=config.heads, num_key_value_heads=config.heads,
        max_position_embeddings=config.seq_len, tie_word_embeddings=False))


def make_batches(config: TinyLlamaConfig, seed: int) -> torch.Tensor:
    """All training batches up front (random tokens), so data loading costs the same both ways."""
    generator = torch.Generator().manual_seed(seed + 1)
    return torch.randint(0, config.vocab, (config.steps + 1, config.batch, config.seq_len), generator=generator)


def lm_loss(model, tokens):
    """Causal-LM loss of a batch of token ids."""
    return model(input_ids=tokens, labels=tokens).loss


class TinyLlamaDomain(Domain):
    """A throw-away domain (registered by this script only) that trains :class:`TinyLlamaConfig`."""

    name = "perf_tiny_llama"
    metric = "val_loss"
    Config = TinyLlamaConfig
    presets = {p: {} for p in ("smoke", "quick", "cpu", "paper")}

    def run(self, config: TinyLlamaConfig, ctx: RunContext) -> dict[str, float]:
        model = build_model(config, ctx.seed)
        batches = make_batches(config, ctx.seed)

        def evaluate(model, step):
            return {"val_loss": float(lm_loss(model, batches[-1]))}

        return train(model, lambda step: batches[step], lm_loss, evaluate, TrainLoop(steps=config.steps), ctx)


def bare_loop(config: TinyLlamaConfig, recipe: str, hparams: dict, seed: int) -> float:
    """The hand-written loop; returns its final validation loss."""
    seed_everything(seed)
    model = build_model(config, seed)
    batches = make_batches(config, seed)
    optimizer = optimizers.build(recipe, model.named_parameters(), **hparams)
    peak = hparams["lr"]
    loop = TrainLoop(steps=config.steps)
    model.train()
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = peak * lr_factor(step, config.steps, loop.warmup, loop.min_lr_ratio)
        optimizer.zero_grad(set_to_none=True)
        loss = lm_loss(model, batches[step])
        loss.backward()
        optimizer.step()
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"bare loop diverged at step {step}")
    model.eval()
    with torch.no_grad():
        return float(lm_loss(model, batches[-1]))


def main() -> None:
    """Measure and print the overhead."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="adam")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=192)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: multi-threaded CPU kernels time erratically on a busy machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = TinyLlamaConfig(hidden=args.hidden, steps=args.steps)
    domain = domains.get(TinyLlamaDomain.name) if TinyLlamaDomain.name in domains.available() else None
    if domain is None:
        domains.register(TinyLlamaDomain)
        domain = domains.get(TinyLlamaDomain.name)
    hparams = {"lr": args.lr}
    params = sum(p.numel() for p in build_model(config, 0).parameters())
    print(f"model: LlamaForCausalLM hidden {config.hidden}, {config.layers} layers, {config.heads} heads, vocab "
          f"{config.vocab}, {params / 1e6:.2f}M parameters; batch {config.batch} x {config.seq_len} random tokens")
    print(f"recipe {args.recipe} lr {args.lr:g}, {config.steps} steps per run, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device cpu")

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        store = Store(out / "runs.sqlite")

        def engine_run(seed: int) -> float:
            spec = RunSpec(domain=domain.name, preset="quick", config={"hidden": config.hidden, "steps": config.steps},
                           overrides={"hidden": config.hidden, "steps": config.steps}, recipe=args.recipe,
                           hparams=hparams, seed=seed)
            record = execute(spec, out, device=torch.device("cpu"))
            if record.status != "finished":
                raise RuntimeError(f"engine run {record.status}: {record.error}")
            finish(record, store, out)
            return record.metric_value

        wall: dict[str, list[float]] = {"bare": [], "engine": []}
        cpu: dict[str, list[float]] = {"bare": [], "engine": []}
        results = {}
        for repeat in range(args.repeats + 1):  # repeat 0 is the warm-up
            order = ("bare", "engine") if repeat % 2 == 0 else ("engine", "bare")
            for mode in order:
                clock, cpu_clock = time.perf_counter(), time.process_time()
                results[mode] = bare_loop(config, args.recipe, hparams, repeat) if mode == "bare" else engine_run(repeat)
                if repeat:
                    wall[mode].append(time.perf_counter() - clock)
                    cpu[mode].append(time.process_time() - cpu_clock)
            if repeat:
                print(f"  repeat {repeat}: wall bare {wall['bare'][-1]:.3f} s, engine {wall['engine'][-1]:.3f} s; "
                      f"CPU bare {cpu['bare'][-1]:.3f} s, engine {cpu['engine'][-1]:.3f} s "
                      f"(val_loss {results['bare']:.6f} / {results['engine']:.6f})")
        store.close()

    for name, timings in (("wall time", wall), ("CPU time of this process", cpu)):
        bare, engine = statistics.median(timings["bare"]), statistics.median(timings["engine"])
        print(f"{name}, median of {args.repeats}: bare {bare:.3f} s ({1e3 * bare / config.steps:.2f} ms/step), "
              f"engine {engine:.3f} s ({1e3 * engine / config.steps:.2f} ms/step); "
              f"engine / bare = {engine / bare:.4f} -> overhead {100 * (engine / bare - 1):+.2f}% (target < 5%)")
    print("(on a shared machine the CPU-time ratio is the reliable one: other processes inflate wall time)")


if __name__ == "__main__":
    main()
