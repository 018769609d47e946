"""Training throughput of the LM cpu presets: today's code against the pre-change path, interleaved in one process.

    python -m benchmarks.perf.throughput [--cases llama:fp32,llama:int4,moe:fp32] [--rounds 6] [--steps-per-round 2]

For each case (domain:precision on the ``cpu`` preset, or ``--preset``) three copies of the same model (same seed)
train side by side with the same batches and the same optimizer (adam): **before** computes the loss the way the
code did before issue 16 (the logits sliced and copied, ``F.cross_entropy`` on the copy; the moe domain through
transformers' ``labels=ids`` loss), **after** through the domain's own job (the default, eager), **compiled**
through the same loss under ``torch.compile`` (``run_all.py --compile``). The rounds rotate which goes first, so a
load change hits all alike. Printed per case: median ms/step, steps/s, tokens/s and the ratio to before; for the
compiled path its first step (the compile, with inductor's on-disk cache as this machine has it) and what a whole
run of the preset's steps gains once that is paid; the cost of one full evaluation (the held-out budget) before
and after; whether the eager paths gave the same step losses (they should: the new loss is the old one bit for
bit) and the compiled path's largest relative difference from them. The machine load (``os.getloadavg``) before
and after and torch's thread count are printed too: on a shared machine only the interleaved ratio means much.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

CASES = "llama:fp32,llama:int4,moe:fp32"
PATHS = ("before", "after", "compiled")
EAGER = ("before", "after")


# --- the pre-change loss paths (copied from the code before this change) ---------------------------------------


def before_next_token_loss(model, ids, reduction: str = "mean"):
    """The llama loss before: slice the logits, copy them contiguous, cross-entropy over the copy."""
    logits = model(input_ids=ids).logits
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1),
                           reduction=reduction)


def before_moe_loss(model, ids, config):
    """The moe loss before: transformers' own causal-LM loss (``labels=ids``) plus the router losses."""
    from domains.moe.domain import SIZES
    from domains.moe.routing import load_balancing_loss, router_z_loss

    top_k = SIZES[config.size][5]
    output = model(input_ids=ids, labels=ids, output_router_logits=True)
    logits = output.router_logits
    aux_loss = load_balancing_loss(logits, top_k) if config.balance_loss == "per_layer" else output.aux_loss
    z_loss = router_z_loss(logits)
    return output.loss + config.router_aux_loss_coef * aux_loss + config.router_z_loss_coef * z_loss


# --- one side of the comparison ----------------------------------------------------------------------------------


class Side:
    """A model, its optimizer and its loss path; :meth:`step` runs one training step, :meth:`evaluate` one
    evaluation of the held-out budget."""

    def __init__(self, domain_name: str, preset: str, precision: str, path: str):
        import domains
        import optimizers
        from benchmarks.perf.ddp_equivalence import _NullLogger
        from benchmarks.protocol.hparams import default_hparams
        from domains.base import RunContext

        domain = domains.get(domain_name)
        self.config = domain.config(preset, {"precision": precision})
        ctx = RunContext(recipe="adam", hparams=default_hparams(domain, "adam", self.config), seed=0,
                         logger=_NullLogger())
        self.job = domain.build_job(self.config, ctx)
        self.model = self.job.model.train()
        self.optimizer = optimizers.build("adam", self.model.named_parameters(), **ctx.hparams)
        self.before, self.domain_name = path == "before", domain_name
        self.loss_fn = torch.compile(self.job.loss_fn) if path == "compiled" else self.job.loss_fn
        self.tokens_per_step = self.config.batch_size * self.config.seq_len
        self.losses: list[float] = []
        self._step = 0

    def loss(self, ids):
        """The training loss of ``ids`` on this side's path."""
        if not self.before:
            out = self.loss_fn(self.model, ids)
            return out[0] if isinstance(out, tuple) else out
        if self.domain_name == "moe":
            return before_moe_loss(self.model, ids, self.config)
        return before_next_token_loss(self.model, ids)

    def step(self) -> float:
        """One training step (batch, forward, backward, optimizer); its wall seconds."""
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.job.batch_at(self._step))
        loss.backward()
        self.optimizer.step()
        self.losses.append(float(loss.detach()))
        self._step += 1
        return time.perf_counter() - start

    def evaluate(self) -> tuple[float, float]:
        """Seconds of one evaluation of the validation budget (the token-weighted loss), and that loss."""
        from domains.lm.causal_lm import next_token_loss

        loss_fn = before_next_token_loss if self.before else next_token_loss
        data = self._data()
        start = time.perf_counter()
        total, count = 0.0, 0
        self.model.eval()
        with torch.no_grad():
            for ids in data.val_batches(self.config.eval_batch_size):
                total += float(loss_fn(self.model, ids, reduction="sum"))
                count += ids[:, 1:].numel()
        self.model.train()
        return time.perf_counter() - start, total / count

    def _data(self):
        from domains.lm.textdata import TextData

        c = self.config
        return TextData.load(c.dataset, c.vocab_size, c.seq_len, c.eval_tokens, c.tokenizer)


def compare(domain_name: str, preset: str, precision: str, rounds: int, steps_per_round: int, warmup: int,
            eval_rounds: int) -> dict:
    """Interleaved step times of the three paths and evaluation times of the two eager ones for one case."""
    sides = {path: Side(domain_name, preset, precision, path) for path in PATHS}
    first_step = {name: side.step() for name, side in sides.items()}
    for side in sides.values():
        for _ in range(warmup - 1):
            side.step()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for round_index in range(rounds):
        shift = round_index % len(PATHS)
        for name in PATHS[shift:] + PATHS[:shift]:
            times[name].extend(sides[name].step() for _ in range(steps_per_round))
    evals: dict[str, list[float]] = {name: [] for name in EAGER}
    eval_losses = {}
    for round_index in range(eval_rounds):
        order = EAGER if round_index % 2 == 0 else EAGER[::-1]
        for name in order:
            seconds, eval_losses[name] = sides[name].evaluate()
            evals[name].append(seconds)
    reference = sides["before"].losses
    drift = max(abs(a - b) / abs(b) for a, b in zip(sides["compiled"].losses, reference))
    return {"times": times, "evals": evals, "tokens": sides["after"].tokens_per_step,
            "first_step": first_step, "run_steps": sides["after"].config.steps,
            "same_losses": reference == sides["after"].losses, "compiled_drift": drift,
            "same_eval": eval_losses["before"] == eval_losses["after"]}


def report(case: str, result: dict) -> list[str]:
    """Markdown rows for one case."""
    rows = []
    base = statistics.median(result["times"]["before"])
    eval_base = statistics.median(result["evals"]["before"])
    steps = result["run_steps"]
    for name in PATHS:
        step = statistics.median(result["times"][name])
        if name in result["evals"]:
            evaluation = statistics.median(result["evals"][name])
            eval_cells = f"{evaluation:.2f} | {eval_base / evaluation:.2f}x"
        else:
            eval_cells = "(eager) | -"
        first = result["first_step"][name]
        whole_run = base * steps / (first + step * (steps - 1))
        rows.append(f"| {case} | {name} | {step * 1e3:.0f} | {1 / step:.2f} | {result['tokens'] / step:,.0f} | "
                    f"{base / step:.2f}x | {first:.1f} | {whole_run:.2f}x | {eval_cells} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=CASES, help=f"domain:precision list (default {CASES})")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps-per-round", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--eval-rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: the engine's thread policy)")
    args = parser.parse_args()
    from benchmarks.running.threads import apply_thread_policy

    apply_thread_policy(workers=1, threads=args.threads or None)
    load_before = os.getloadavg()
    lines = ["| case | path | ms/step | steps/s | tokens/s | speed-up | first step s | speed-up over a run | eval s "
             "| eval speed-up |", "|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for case in args.cases.split(","):
        domain_name, precision = case.split(":")
        result = compare(domain_name, args.preset, precision, args.rounds, args.steps_per_round, args.warmup,
                         args.eval_rounds)
        lines += report(f"{domain_name} {args.preset} {precision}", result)
        notes.append(f"{case}: same step losses before/after: {result['same_losses']}, same validation loss: "
                     f"{result['same_eval']}; compiled step losses within {result['compiled_drift']:.1e} (relative)")
    load_after = os.getloadavg()
    print(f"`{args.preset}` presets, adam, {torch.get_num_threads()} torch thread(s), {os.cpu_count()} CPUs, "
          f"{args.rounds} rounds x {args.steps_per_round} steps interleaved (median; 'speed-up over a run': the "
          f"preset's steps with the first step's cost included); load average (1/5/15 min) "
          f"{'/'.join(f'{x:.1f}' for x in load_before)} before, {'/'.join(f'{x:.1f}' for x in load_after)} after\n")
    print("\n".join(lines))
    print()
    print("\n".join(notes))


if __name__ == "__main__":
    main()
