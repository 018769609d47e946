"""Optimizer step time and state memory on LLaMA-60M-shaped parameters (SPEC §5).

Times ``step()`` of the chosen recipes against the baseline a user would pick, ``torch.optim.AdamW(fused=True)``,
with ``torch.optim.AdamW(foreach=True)`` as a second reference column, on fp32 parameters shaped like LLaMA-60M
(hidden 512, intermediate 1376, 8 layers, vocab 32000: ~58M parameters in 75 tensors) with random gradients.
Steps are **interleaved** in one process (A B C D A B C D ..., after warm-up steps), so machine-load drifts hit
every optimizer alike; each optimizer has its own parameters and gradients, and the gradients are restored
outside the timed region before every step (``adam_clip`` scales them in place). Reports the median step
time, its ratios to AdamW(fused) and AdamW(foreach), optimizer-state bytes (sum of ``nbytes`` of the state
tensors) and state bytes per tensor above AdamW's, with the machine's load average before and after the run and
torch's thread count (on a shared machine the load moves the figures: read the ratios, and re-measure quiet).
All recipes run with weight decay 0, and so do both AdamWs. Targets (SPEC §5): ``stable_spam`` step <= 1.5x
AdamW(fused) (1.3x the goal); state <= AdamW's + 64 bytes per tensor.

    python -m benchmarks.perf.optimizer_step
    python -m benchmarks.perf.optimizer_step --reps 20 --optimizers stable_spam,spam,adam_clip,stable_spam_ref
    python -m benchmarks.perf.optimizer_step --json results/scratch/optimizer_step.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import optimizers

STEP_TARGET = 1.5
STATE_TARGET_BYTES_PER_TENSOR = 64
BASELINE = "AdamW(fused)"
FOREACH = "AdamW(foreach)"


def llama60m_shapes(hidden: int = 512, intermediate: int = 1376, layers: int = 8,
                    vocab: int = 32000) -> list[tuple[int, ...]]:
    """Parameter shapes of LLaMA-60M: embedding, per layer q/k/v/o, gate/up/down and two RMSNorm weights,
    final norm, untied lm_head."""
    shapes: list[tuple[int, ...]] = [(vocab, hidden)]
    for _ in range(layers):
        shapes += [(hidden, hidden)] * 4 + [(intermediate, hidden)] * 2 + [(hidden, intermediate)]
        shapes += [(hidden,), (hidden,)]
    return shapes + [(hidden,), (vocab, hidden)]


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of all tensors in the optimizer's state (a chain's transform state included)."""
    states = list(opt.state.values()) + list(getattr(opt, "transform_state", {}).values())
    return sum(v.nbytes for s in states for v in s.values() if torch.is_tensor(v))


class Contender:
    """One optimizer over its own copy of the parameters, with pristine gradients to restore before a step."""

    def __init__(self, name: str, shapes, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.name = name
        self.params = [torch.nn.Parameter(torch.randn(s, generator=gen) * 0.02) for s in shapes]
        self.grads = [torch.randn(s, generator=gen) * 1e-3 for s in shapes]
        for p, g in zip(self.params, self.grads):
            p.grad = g.clone()
        if name in (BASELINE, FOREACH):
            fused = name == BASELINE
            self.opt = torch.optim.AdamW(self.params, lr=1e-3, weight_decay=0.0, fused=fused, foreach=not fused)
        else:
            self.opt = optimizers.build(name, self.params, lr=1e-3, weight_decay=0.0)
        self.times: list[float] = []

    def timed_step(self) -> None:
        for p, g in zip(self.params, self.grads):
            p.grad.copy_(g)
        start = time.perf_counter()
        self.opt.step()
        self.times.append(time.perf_counter() - start)


def measure(names: list[str], reps: int, warmup: int) -> list[Contender]:
    """Interleaved steps: ``warmup`` untimed rounds, then ``reps`` timed ones; AdamW(fused), AdamW(foreach) first."""
    shapes = llama60m_shapes()
    contenders = [Contender(name, shapes) for name in [BASELINE, FOREACH] + names]
    for rep in range(warmup + reps):
        for c in contenders:
            c.timed_step()
    for c in contenders:
        c.times = c.times[warmup:]
    return contenders


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo where there is one, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> tuple[float, float, float] | None:
    """The 1, 5 and 15-minute load averages, where the OS tells them."""
    return os.getloadavg() if hasattr(os, "getloadavg") else None


def report(contenders: list[Contender], load_before: tuple[float, float, float] | None) -> tuple[str, dict]:
    """The Markdown table (with a header line saying what was measured) and the same figures as a dict."""
    base, foreach = contenders[0], contenders[1]
    base_median, base_bytes = statistics.median(base.times), state_bytes(base.opt)
    foreach_median = statistics.median(foreach.times)
    n_tensors, n_params = len(base.params), sum(p.numel() for p in base.params)
    rows, records = [], []
    for c in contenders:
        median, nbytes = statistics.median(c.times), state_bytes(c.opt)
        extra = (nbytes - base_bytes) / n_tensors
        backends = c.opt.backends_in_use() if hasattr(c.opt, "backends_in_use") else []
        name = f"{c.name} ({', '.join(backends)})" if backends else c.name
        rows.append(f"| {name} | {median * 1e3:.1f} | {min(c.times) * 1e3:.1f} | {median / base_median:.2f}x "
                    f"| {median / foreach_median:.2f}x | {nbytes / 2**20:.1f} | {extra:+.0f} |")
        records.append(dict(optimizer=c.name, backends=backends, median_s=median, min_s=min(c.times),
                            ratio_to_adamw_fused=median / base_median, ratio_to_adamw_foreach=median / foreach_median,
                            state_bytes=nbytes, state_bytes_per_tensor_above_adamw=extra, times_s=c.times))
    machine = dict(cpu=cpu_name(), cores=os.cpu_count(), threads=torch.get_num_threads(), torch=torch.__version__,
                   load_average_before=load_before, load_average_after=load_average())
    header = (
        f"Optimizer step on LLaMA-60M-shaped fp32 parameters ({n_params / 1e6:.1f}M in {n_tensors} tensors); "
        f"{machine['cpu']}, {machine['cores']} cores, {machine['threads']} torch threads, torch {machine['torch']}; "
        f"load average (1, 5, 15 min) before {_fmt(load_before)}, after {_fmt(machine['load_average_after'])}. "
        f"Interleaved, median of {len(base.times)} steps each. Weight decay 0 for every optimizer. Targets: "
        f"stable_spam <= {STEP_TARGET}x AdamW(fused); state <= AdamW's + {STATE_TARGET_BYTES_PER_TENSOR} B/tensor.\n\n"
        "| optimizer (backend) | median step (ms) | min (ms) | vs AdamW(fused) | vs AdamW(foreach) | state (MiB) "
        "| state B/tensor above AdamW |\n|---|---|---|---|---|---|---|")
    return "\n".join([header] + rows), dict(n_params=n_params, n_tensors=n_tensors, machine=machine,
                                            results=records)


def _fmt(load: tuple[float, float, float] | None) -> str:
    return "unknown" if load is None else "(" + ", ".join(f"{x:.2f}" for x in load) + ")"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizers", default="stable_spam,spam,adam_clip",
                        help="comma-separated recipe names compared with AdamW (default: %(default)s)")
    parser.add_argument("--reps", type=int, default=15, help="timed steps per optimizer (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=20,
                        help="untimed steps first; >= 20 so SPAM's spike clipping is on (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the figures and raw times to this JSON file")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
    unknown = [n for n in names if n not in optimizers.available()]
    if unknown or args.reps < 1 or args.warmup < 0:
        parser.error(f"unknown optimizer(s) {unknown}" if unknown else "--reps must be >= 1 and --warmup >= 0")
    load_before = load_average()
    table, record = report(measure(names, args.reps, args.warmup), load_before)
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
