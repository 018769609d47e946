"""CUDA self-check: optimizer steps, the LLaMA step in bf16 and 4-bit QAT, run_all.py with workers, CPU parity.

One command, under 8 minutes on one GPU, prints one Markdown table per part and exits 1 when a part failed:

* (a) ``step()`` of stable_spam, spam, adam_clip and stable_spam_ref against ``torch.optim.AdamW(fused=True)``
  and ``AdamW(foreach=True)`` on fp32 parameters shaped like LLaMA-60M, -130M and -350M (the paper's size table,
  ``domains.llama.SIZES``, vocab 32000; parameter lists only, no model) with random gradients: interleaved
  rounds, CUDA events, median, and the optimizer state bytes. stable_spam and spam also run with each backend
  named (``stable_spam[compiled]``: the passes compiled by torch.compile, the CUDA default; ``[foreach]``: the
  multi-tensor reference); the "first step" column holds the cold compile. Timings are reported, not judged (SPEC §5's
  targets, 1.5x now and 1.3x as the goal against AdamW(fused), are in the table); a non-finite parameter fails.
* (b) the llama training step (forward, backward, ``AdamW(fused=True)``) at 60M, batch 64 x 256 random token ids,
  of the llama domain's model at ``compute=bf16`` (bf16 autocast) with ``quant`` none, int4, fp4_e1m2, mxfp4 and
  nvfp4 (the projections are ``domains.quant.QuantLinear``): tokens/s and step time relative to plain bf16.
  A non-finite loss fails.
* (c) ``run_all.py --preset smoke --domains llama,moe,weather,quadratic --workers 4`` in a subprocess, into a
  temporary ``--out``: fails unless it exits 0, every domain stored runs, every run finished, on the device.
* (d) each fused optimizer (stable_spam, spam, adam_clip) stepped on CPU and on the device from the same
  parameters and gradients (small tensors, gradient spikes, 30 steps, momentum resets every 10 / 25 steps):
  fails when a parameter differs by more than 1e-5 (1% of one step's size at lr 1e-3; fp32 rounding differences
  stay far below: the CPU's two paths differ by at most 5e-7 here). On CUDA the device side takes its default
  (the compiled backend); ``--device cpu`` compares the CPU default (native kernels) with the foreach reference.

Without CUDA (and without ``--device``) it prints one line saying so and exits 0. ``--device cpu --tiny`` runs
every part's logic on the CPU with tiny shapes (what the tests run); ``--parts a,d`` picks parts.

    python -m benchmarks.perf.gpu_check
    python -m benchmarks.perf.gpu_check --parts a,b
    python -m benchmarks.perf.gpu_check --device cpu --tiny
    make gpu-check ARGS="--parts d"

On the lent GPU machine (torch and transformers, no package index): first, here, ``sh
benchmarks/perf/gpu_bundle.sh`` downloads the wheels it lacks into ``.cache/wheels/`` (``.cache/`` is git-ignored
and also holds the text and weather data), then one device ``run`` with ``carry: [".cache"]``,
``timeout_s: 540`` and the command::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site
    .cache/wheels/*.whl && export PYTHONPATH=/tmp/site || exit; PYTHONUNBUFFERED=1 python3 -m
    benchmarks.perf.gpu_check 2>&1 | tee $OUT/gpu_check.md

About 40 MiB travel (the tree ~6, .cache/ ~34 with the wheels). datasets 5.2.0 needs pyarrow >= 24: the first line
printed names the versions found there.
"""
from __future__ import annotations

import argparse
import math
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

import optimizers
from benchmarks.perf.optimizer_step import llama60m_shapes, state_bytes

REPO_ROOT = Path(__file__).resolve().parents[2]
PARTS = "abcd"
STEP_OPTIMIZERS = ("stable_spam", "spam", "adam_clip", "stable_spam_ref")
#: Part (a) also times these with an explicit backend ("name[backend]"): the compiled step next to the reference.
BACKEND_ROWS = ("stable_spam[compiled]", "stable_spam[foreach]", "spam[compiled]", "spam[foreach]")
FUSED_OPTIMIZERS = ("stable_spam", "spam", "adam_clip")
QAT_FORMATS = ("int4", "fp4_e1m2", "mxfp4", "nvfp4")
SMOKE_DOMAINS = ("llama", "moe", "weather", "quadratic")
PARITY_TOLERANCE = 1e-5
PAPER_VOCAB = 32000
SPEC_STEP_TARGETS = (1.5, 1.3)  # stable_spam vs AdamW(fused): now, goal (SPEC §5)


@dataclass
class PartResult:
    """One part's Markdown (a title line and a table) and what failed in it."""

    title: str
    table: str
    failures: list[str] = field(default_factory=list)


class StepTimer:
    """Times calls on ``device``: CUDA events there (read after one synchronize at the end), else a wall clock."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self._events: list = []
        self._seconds: list[float] = []

    def time(self, fn) -> None:
        """Run ``fn()`` and record how long it took."""
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            self._events.append((start, end))
        else:
            clock = time.perf_counter()
            fn()
            self._seconds.append(time.perf_counter() - clock)

    def seconds(self, skip: int = 0) -> list[float]:
        """Recorded durations in seconds, the first ``skip`` (warm-up) left out."""
        if self.cuda:
            torch.cuda.synchronize()
            self._seconds += [start.elapsed_time(end) / 1e3 for start, end in self._events]
            self._events = []
        return self._seconds[skip:]


# --- (a) optimizer step time ----------------------------------------------------------------------


class StepContender:
    """One optimizer over its own parameters; ``step()`` first restores the shared pristine gradients."""

    def __init__(self, name: str, shapes, grads: list[torch.Tensor], device: torch.device, seed: int = 0):
        gen = torch.Generator(device=device).manual_seed(seed)
        self.name, self.grads = name, grads
        self.params = [torch.nn.Parameter(torch.randn(s, generator=gen, device=device) * 0.02) for s in shapes]
        for p, g in zip(self.params, grads):
            p.grad = g.clone()
        if name.startswith("AdamW"):
            kind = {"AdamW(fused)": "fused", "AdamW(foreach)": "foreach"}[name]
            self.opt = torch.optim.AdamW(self.params, lr=1e-3, weight_decay=0.0, **{kind: True})
        else:
            recipe, _, backend = name.rstrip("]").partition("[")
            self.opt = optimizers.build(recipe, self.params, lr=1e-3, weight_decay=0.0)
            if backend:
                self.opt.backend = backend
        self.timer = StepTimer(device)

    def restore_grads(self) -> None:
        """Put the pristine gradients back (clipping optimizers rewrite ``p.grad``)."""
        torch._foreach_copy_([p.grad for p in self.params], self.grads)

    def finite(self) -> bool:
        """Whether every parameter is still finite."""
        return bool(torch.stack([p.isfinite().all() for p in self.params]).all())


def step_times(device: torch.device, tiny: bool) -> PartResult:
    """Part (a): interleaved step times and state bytes at each size."""
    from domains.llama.domain import SIZES

    sizes, vocab, warmup, reps = (("nano", "micro"), 1024, 2, 3) if tiny else \
        (("60M", "130M", "350M"), PAPER_VOCAB, 20, 30)  # >= 20 warm-up steps: SPAM's spike clipping is on
    names = ["AdamW(fused)", "AdamW(foreach)", *STEP_OPTIMIZERS, *BACKEND_ROWS]
    lines = ["| size | optimizer | backend | median step (ms) | vs AdamW(fused) | vs AdamW(foreach) | first step (s) "
             "| state (MiB) | state B/tensor above AdamW(fused) |", "|---|---|---|---|---|---|---|---|---|"]
    failures = []
    for size in sizes:
        hidden, intermediate, _, layers = SIZES[size]
        shapes = llama60m_shapes(hidden, intermediate, layers, vocab)
        gen = torch.Generator(device=device).manual_seed(1)
        grads = [torch.randn(s, generator=gen, device=device) * 1e-3 for s in shapes]
        contenders = [StepContender(name, shapes, grads, device) for name in names]
        for _ in range(warmup + reps):
            for c in contenders:
                c.restore_grads()
                c.timer.time(c.opt.step)
        firsts = {c.name: c.timer.seconds()[0] for c in contenders}       # the compiled step's cold compile
        medians = {c.name: statistics.median(c.timer.seconds(skip=warmup)) for c in contenders}
        base_bytes = state_bytes(contenders[0].opt)
        n_params = sum(p.numel() for p in contenders[0].params)
        for c in contenders:
            nbytes = state_bytes(c.opt)
            lines.append(f"| {size} ({n_params / 1e6:.1f}M, {len(shapes)} tensors) | {c.name} "
                         f"| {backend_of(c.opt)} "
                         f"| {medians[c.name] * 1e3:.2f} | {medians[c.name] / medians['AdamW(fused)']:.2f}x "
                         f"| {medians[c.name] / medians['AdamW(foreach)']:.2f}x | {firsts[c.name]:.2f} "
                         f"| {nbytes / 2**20:.1f} "
                         f"| {(nbytes - base_bytes) / len(shapes):+.0f} |")
            if not c.finite():
                failures.append(f"(a) {c.name} at {size}: non-finite parameters")
        del contenders, grads
        _release(device)
    now, goal = SPEC_STEP_TARGETS
    title = (f"(a) Optimizer step on LLaMA-shaped fp32 parameters (vocab {vocab}), {device_name(device)}: "
             f"interleaved, median of {reps} steps after {warmup} warm-up steps, weight decay 0. SPEC §5: "
             f"stable_spam within {now}x of AdamW(fused) now, {goal}x as the goal.")
    return PartResult(title, "\n".join(lines), failures)


def backend_of(opt) -> str:
    """The backend(s) that stepped ``opt`` ("torch" for torch's and the chain recipes), a compiled backend
    that fell back to the reference marked so."""
    if not hasattr(opt, "backends_in_use"):
        return "torch"
    failed = any(getattr(b, "failure", None) for b in opt._backends.values())
    return ", ".join(opt.backends_in_use()) + (" (compile failed: foreach)" if failed else "")


# --- (b) llama training step ----------------------------------------------------------------------


def llama_config(size: str, seq_len: int, quant_format: str):
    """The llama domain's config of a part (b) cell: bf16 compute with ``quant_format`` (``none``: plain bf16),
    as the ``paper`` preset's 16-bit and 4-bit runs are."""
    from domains.llama.domain import LlamaConfig

    return LlamaConfig(size=size, compute="bf16", quant=quant_format, seq_len=seq_len)


def build_llama(config, vocab: int, device: torch.device, seed: int = 0):
    """The llama domain's model for ``config`` (``domains.llama.domain.build_model``: QAT projections in its
    quant format), on ``device`` in training mode."""
    from domains.llama.domain import build_model

    return build_model(config, vocab, seed).to(device).train()


class TrainStep:
    """One training step (forward under the config's autocast, backward, fused AdamW) on a fixed random batch."""

    def __init__(self, config, model, ids: torch.Tensor, device: torch.device):
        self.model, self.ids, self.device = model, ids, device
        self.autocast_dtype = config.train_loop().autocast_dtype
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        self.losses: list[torch.Tensor] = []
        self.timer = StepTimer(device)

    def __call__(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            loss = self.model(input_ids=self.ids, labels=self.ids).loss
        loss.backward()
        self.opt.step()
        self.losses.append(loss.detach())


def llama_steps(device: torch.device, tiny: bool) -> PartResult:
    """Part (b): tokens/s of the bf16 step with and without 4-bit QAT, interleaved."""
    size, vocab, batch, seq_len, warmup, rounds, per_round = (
        ("nano", 256, 2, 32, 1, 2, 1) if tiny else ("60M", PAPER_VOCAB, 64, 256, 3, 5, 2))
    ids = torch.randint(vocab, (batch, seq_len), generator=torch.Generator().manual_seed(0)).to(device)
    steps = {}
    for fmt in ("none", *QAT_FORMATS):  # rows named by the config's precision label: bf16, bf16+int4, ...
        config = llama_config(size, seq_len, fmt)
        steps[config.precision] = TrainStep(config, build_llama(config, vocab, device), ids, device)
    for step in steps.values():
        for _ in range(warmup):
            step.timer.time(step)
    for _ in range(rounds):
        for step in steps.values():
            for _ in range(per_round):
                step.timer.time(step)
    medians = {name: statistics.median(step.timer.seconds(skip=warmup)) for name, step in steps.items()}
    lines = ["| precision | median ms/step | tokens/s | step time vs bf16 | last loss |", "|---|---|---|---|---|"]
    failures = []
    for name, step in steps.items():
        last = float(step.losses[-1])
        lines.append(f"| {name} | {medians[name] * 1e3:.1f} | {batch * seq_len / medians[name]:,.0f} "
                     f"| {medians[name] / medians['bf16']:.2f}x | {last:.3f} |")
        if not all(math.isfinite(float(v)) for v in step.losses):
            failures.append(f"(b) {name}: non-finite loss")
    del steps
    _release(device)
    title = (f"(b) LLaMA-{size} training step (forward, backward, AdamW(fused)), batch {batch} x {seq_len} random "
             f"tokens, vocab {vocab}, bf16 autocast, {device_name(device)}: interleaved, median of "
             f"{rounds * per_round} steps after {warmup} warm-up steps. SPEC §5: 4-bit QAT within 1.5x.")
    return PartResult(title, "\n".join(lines), failures)


# --- (c) smoke presets through run_all.py ---------------------------------------------------------


def smoke_suite(device: torch.device, tiny: bool) -> PartResult:
    """Part (c): the smoke presets through ``run_all.py --workers N`` in a subprocess, checked from the store."""
    domains_, workers, extra = (("quadratic",), 2, ["--optimizers", "adam,stable_spam", "--no-outputs"]) if tiny \
        else (SMOKE_DOMAINS, 4, [])
    env = dict(os.environ, HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    if device.type != "cuda":
        env["CUDA_VISIBLE_DEVICES"] = ""  # run_all picks CUDA whenever it sees one
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        out = Path(tmp) / "smoke"
        command = [sys.executable, str(REPO_ROOT / "run_all.py"), "--preset", "smoke", "--domains",
                   ",".join(domains_), "--workers", str(workers), "--out", str(out), *extra]
        clock = time.perf_counter()
        done = subprocess.run(command, cwd=REPO_ROOT, env=dict(env, SSB_RESULTS_ROOT=tmp), capture_output=True,
                              text=True, timeout=300)
        seconds = time.perf_counter() - clock
        rows = _stored_runs(out / "runs.sqlite")
    failures = [] if done.returncode == 0 else [
        f"(c) run_all.py exited {done.returncode}: {_last_line(done.stderr or done.stdout)}"]
    lines = ["| domain | runs | finished | diverged | failed | devices |", "|---|---|---|---|---|---|"]
    for domain in domains_:
        runs = [r for r in rows if r["domain"] == domain]
        counts = {status: sum(r["status"] == status for r in runs) for status in ("finished", "diverged", "failed")}
        devices = sorted({r["device"] or "?" for r in runs})
        lines.append(f"| {domain} | {len(runs)} | {counts['finished']} | {counts['diverged']} | {counts['failed']} "
                     f"| {', '.join(devices)} |")
        if not runs:
            failures.append(f"(c) {domain}: no run stored")
        for r in runs:
            if r["status"] != "finished":
                failures.append(f"(c) {domain} {r['recipe']} {r['status']}: {r['error']}")
            elif not (r["device"] or "").startswith(device.type):
                failures.append(f"(c) {domain} {r['recipe']} ran on {r['device']}, not {device.type}")
    title = (f"(c) `run_all.py --preset smoke --domains {','.join(domains_)} --workers {workers}` on "
             f"{device_name(device)}: exit code {done.returncode}, {len(rows)} runs stored, {seconds:.0f} s.")
    return PartResult(title, "\n".join(lines), failures)


def _stored_runs(path: Path) -> list[dict]:
    """Domain, recipe, status, error and device of every run in a store (empty when there is none)."""
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        query = ("SELECT r.domain, r.recipe, r.status, r.error, e.device FROM runs r "
                 "LEFT JOIN environment e ON e.run_id = r.run_id")
        return [dict(row) for row in conn.execute(query)]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


# --- (d) CPU-vs-device parity ---------------------------------------------------------------------

PARITY_SHAPES = ((64, 32), (32,), (256, 256), (3, 5, 7))  # (256, 256) is large enough for the CPU chunked path
PARITY_STEPS = 30
PARITY_HPARAMS = {
    "stable_spam": dict(reset_interval=10, total_T=PARITY_STEPS),  # resets at 10, 20, 30
    "spam": dict(reset_interval=25, warmup=5),  # spike clipping from step 20, reset at 25
    "adam_clip": dict(max_norm=1.0),  # the gradients' norm is ~30: clipped every step
}
SPIKE_STEPS = (5, 15, 22)


def parity_gradients(steps: int, seed: int = 0) -> list[list[torch.Tensor]]:
    """Per step, CPU gradients for ``PARITY_SHAPES``: N(0, 0.1), with 1000x spikes on a few entries at
    ``SPIKE_STEPS`` (they exercise AdaClip and SPAM's spike clipping)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for step in range(1, steps + 1):
        grads = [torch.randn(s, generator=gen) * 0.1 for s in PARITY_SHAPES]
        if step in SPIKE_STEPS:
            for g in grads:
                g.view(-1)[:3] *= 1000.0
        out.append(grads)
    return out


def optimizer_parity(name: str, device: torch.device, steps: int = PARITY_STEPS) -> float:
    """Largest |p_cpu - p_device| over all steps of recipe ``name`` fed identical parameters and gradients."""
    gen = torch.Generator().manual_seed(1)
    initial = [torch.randn(s, generator=gen) for s in PARITY_SHAPES]
    ref = [torch.nn.Parameter(t.clone()) for t in initial]
    dev = [torch.nn.Parameter(t.clone().to(device)) for t in initial]
    hparams = dict(lr=1e-3, weight_decay=0.0, **PARITY_HPARAMS[name])
    ref_opt, dev_opt = optimizers.build(name, ref, **hparams), optimizers.build(name, dev, **hparams)
    if device.type == "cpu" and hasattr(dev_opt, "backend"):
        dev_opt.backend = "foreach"  # the multi-tensor reference; on CUDA "auto" takes the compiled backend
    worst = 0.0
    for grads in parity_gradients(steps):
        for p, q, g in zip(ref, dev, grads):
            p.grad, q.grad = g.clone(), g.to(device)
        ref_opt.step()
        dev_opt.step()
        diff = max(float((p.detach() - q.detach().cpu()).abs().max()) for p, q in zip(ref, dev))
        worst = max(worst, diff if math.isfinite(diff) else math.inf)
    return worst


def parity(device: torch.device, tiny: bool) -> PartResult:
    """Part (d): CPU-vs-device parity of the fused optimizers."""
    lines = ["| optimizer | hyper-parameters | steps | max abs diff | tolerance | ok |", "|---|---|---|---|---|---|"]
    failures = []
    for name in FUSED_OPTIMIZERS:
        diff = optimizer_parity(name, device)
        ok = diff <= PARITY_TOLERANCE
        settings = ", ".join(f"{k}={v}" for k, v in PARITY_HPARAMS[name].items())
        lines.append(f"| {name} | lr=0.001, {settings} | {PARITY_STEPS} | {diff:.2e} | {PARITY_TOLERANCE:.0e} "
                     f"| {'yes' if ok else 'NO'} |")
        if not ok:
            failures.append(f"(d) {name}: CPU and {device} differ by {diff:.3g} > {PARITY_TOLERANCE:g}")
    title = (f"(d) Parity: CPU (default path) vs {device_name(device)} (multi-tensor path), tensors "
             f"{', '.join('x'.join(map(str, s)) for s in PARITY_SHAPES)}, gradient spikes at steps "
             f"{', '.join(map(str, SPIKE_STEPS))}.")
    return PartResult(title, "\n".join(lines), failures)


# --- driver ---------------------------------------------------------------------------------------

RUNNERS = {"a": step_times, "b": llama_steps, "c": smoke_suite, "d": parity}


def device_name(device: torch.device) -> str:
    """A readable name of ``device`` (the GPU's model on CUDA)."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device})"
    return str(device)


def _release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_parts(parts: str, device: torch.device, tiny: bool) -> list[PartResult]:
    """Run the chosen parts in order; a part that raises is a failed part, the others still run."""
    results = []
    for part in parts:
        clock = time.perf_counter()
        try:
            result = RUNNERS[part](device, tiny)
        except Exception as exc:  # report and go on: the other parts are still worth their minutes
            result = PartResult(f"({part}) raised", "", [f"({part}) {type(exc).__name__}: {_last_line(str(exc))}"])
        result.title += f" [{time.perf_counter() - clock:.0f} s]"
        results.append(result)
        print(f"\n### {result.title}\n\n{result.table}\n", flush=True)
    return results


def _versions() -> str:
    """Versions of the packages the parts depend on (a machine's own may differ from pyproject's pins)."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("torch", "transformers", "datasets", "pyarrow"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} missing")
    return ", ".join(found)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"gpu_check: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m benchmarks.perf.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=PARTS, help="which parts to run, e.g. a,d (default: all of a,b,c,d)")
    parser.add_argument("--device", default=None, help="run on this device instead of cuda (e.g. cpu, cuda:1)")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes and runs (to check the logic on a CPU)")
    args = parser.parse_args(argv)
    parts = "".join(args.parts.replace(",", "").split())
    if not parts or any(p not in PARTS for p in parts) or len(set(parts)) != len(parts):
        parser.error(f"--parts {args.parts!r}: give distinct letters among {','.join(PARTS)}")
    if args.device is None and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device visible to torch {torch.__version__}; nothing to check (use --device cpu "
              "to check the logic on the CPU).")
        return 0
    try:
        device = torch.device(args.device or "cuda")
    except RuntimeError as exc:
        parser.error(f"--device {args.device!r}: {exc}")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch {torch.__version__} sees no CUDA device")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    print(f"gpu_check on {device_name(device)}, {_versions()}, parts {','.join(parts)}"
          f"{' (tiny)' if args.tiny else ''}", flush=True)
    failures = [f for result in run_parts(parts, device, args.tiny) for f in result.failures]
    for failure in failures:
        print(f"FAILED {failure}")
    print("gpu_check: " + (f"{len(failures)} failure(s)" if failures else "every part passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
