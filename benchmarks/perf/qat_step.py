"""Cost of quantization-aware training: one llama training step in 4-bit QAT vs full precision.

Times forward + backward + optimizer step of the ``llama`` domain's model (the ``cpu`` preset by default)
at each precision, **interleaved** in one process (round-robin over the precisions, so machine load
drifts hit all of them alike), and prints a Markdown table of the median step time and its ratio to
fp32 (SPEC §5 target: 4-bit QAT within 1.5x).

    python -m benchmarks.perf.qat_step
    python -m benchmarks.perf.qat_step --preset quick --precisions int4,fp4_e1m2,mxfp4,nvfp4 --rounds 20

A precision is an old one-word name (``int4``: fp32 compute + INT4) or ``<compute>+<quant>`` (``bf16+int4``), as
:func:`domains.lm.precision.parse_precision` reads it (bf16 is ~15x slower than fp32 on CPU in torch).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

TARGET = 1.5


def _null_logger():
    from benchmarks.perf.ddp_equivalence import _NullLogger

    return _NullLogger()


def make_step(preset: str, precision: str, recipe: str = "adam"):
    """A zero-argument function running one training step of the preset's model at ``precision``."""
    import domains
    import optimizers
    from benchmarks.protocol.hparams import default_hparams
    from domains.base import RunContext

    domain = domains.get("llama")
    config = domain.config(preset, {"precision": precision})
    ctx = RunContext(recipe=recipe, hparams=default_hparams(domain, recipe, config), seed=0, logger=_null_logger())
    job = domain.build_job(config, ctx)
    model = job.model.train()
    optimizer = optimizers.build(recipe, model.named_parameters(), **ctx.hparams)
    counter = iter(range(10**9))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        job.loss_fn(model, job.batch_at(next(counter))).backward()
        optimizer.step()

    return step


def measure(preset: str, precisions: list[str], rounds: int, steps_per_round: int, warmup: int) -> dict[str, list[float]]:
    """Per-step seconds for each precision, measured round-robin."""
    steps = {precision: make_step(preset, precision) for precision in precisions}
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {precision: [] for precision in precisions}
    for _ in range(rounds):
        for precision, step in steps.items():
            for _ in range(steps_per_round):
                start = time.perf_counter()
                step()
                times[precision].append(time.perf_counter() - start)
    return times


def table(times: dict[str, list[float]], reference: str = "fp32") -> str:
    """Markdown table: median ms/step, interquartile range, ratio to the reference."""
    base = statistics.median(times[reference])
    lines = ["| precision | median ms/step | IQR ms | ratio vs fp32 | within 1.5x |", "|---|---|---|---|---|"]
    for precision, values in times.items():
        q1, _, q3 = statistics.quantiles(values, n=4)
        ratio = statistics.median(values) / base
        ok = "" if precision == reference else ("yes" if ratio <= TARGET else "no")
        lines.append(f"| {precision} | {statistics.median(values) * 1e3:.1f} | {(q3 - q1) * 1e3:.1f} | {ratio:.2f} | {ok} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", help="llama preset whose model and batch are timed (default cpu)")
    parser.add_argument("--precisions", default="int4,fp4_e1m2,mxfp4", help="QAT formats compared with fp32")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps-per-round", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    precisions = ["fp32", *[p for p in args.precisions.split(",") if p and p != "fp32"]]
    times = measure(args.preset, precisions, args.rounds, args.steps_per_round, args.warmup)
    print(f"llama `{args.preset}` preset, adam, {torch.get_num_threads()} thread(s), "
          f"{args.rounds} rounds x {args.steps_per_round} steps, interleaved\n")
    print(table(times))


if __name__ == "__main__":
    main()
