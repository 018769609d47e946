"""Training throughput of the LM cpu presets: today's code against the pre-change path, interleaved in one process.

    python -m benchmarks.perf.throughput [--cases llama:fp32,llama:int4,moe:fp32] [--rounds 6] [--steps-per-round 2]

For each case (domain:precision on the ``cpu`` preset, or ``--preset``) two copies of the same model (same seed)
train side by side with the same batches and the same optimizer (adam): **before** computes the loss the way the
code did before issue 16 (the logits sliced and copied, ``F.cross_entropy`` on the copy; the moe domain through
transformers' ``labels=ids`` loss), **after** through the domain's own job. The rounds alternate which goes first,
so a load change hits both alike. Printed per case: median ms/step, steps/s, tokens/s and the after/before ratio;
the cost of one full evaluation (the held-out budget) both ways; whether the two paths gave the same step losses
(they should: the new loss is the old one bit for bit). The machine load (``os.getloadavg``) before and after and
torch's thread count are printed too: on a shared machine only the interleaved ratio means much.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

CASES = "llama:fp32,llama:int4,moe:fp32"


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

    def __init__(self, domain_name: str, preset: str, precision: str, before: bool):
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
        self.before, self.domain_name = before, domain_name
        self.tokens_per_step = self.config.batch_size * self.config.seq_len
        self.losses: list[float] = []
        self._step = 0

    def loss(self, ids):
        """The training loss of ``ids`` on this side's path."""
        if not self.before:
            out = self.job.loss_fn(self.model, ids)
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
    """Interleaved step and evaluation times of the two paths for one case."""
    sides = {"before": Side(domain_name, preset, precision, True), "after": Side(domain_name, preset, precision, False)}
    for side in sides.values():
        for _ in range(warmup):
            side.step()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for round_index in range(rounds):
        order = list(sides) if round_index % 2 == 0 else list(reversed(sides))
        for name in order:
            times[name].extend(sides[name].step() for _ in range(steps_per_round))
    evals: dict[str, list[float]] = {name: [] for name in sides}
    eval_losses = {}
    for round_index in range(eval_rounds):
        order = list(sides) if round_index % 2 == 0 else list(reversed(sides))
        for name in order:
            seconds, eval_losses[name] = sides[name].evaluate()
            evals[name].append(seconds)
    return {"times": times, "evals": evals, "tokens": sides["after"].tokens_per_step,
            "same_losses": sides["before"].losses == sides["after"].losses,
            "same_eval": eval_losses["before"] == eval_losses["after"]}


def report(case: str, result: dict) -> list[str]:
    """Markdown rows for one case."""
    rows = []
    base = statistics.median(result["times"]["before"])
    eval_base = statistics.median(result["evals"]["before"])
    for name in ("before", "after"):
        step = statistics.median(result["times"][name])
        evaluation = statistics.median(result["evals"][name])
        rows.append(f"| {case} | {name} | {step * 1e3:.0f} | {1 / step:.2f} | {result['tokens'] / step:,.0f} | "
                    f"{base / step:.2f}x | {evaluation:.2f} | {eval_base / evaluation:.2f}x |")
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
    lines = ["| case | path | ms/step | steps/s | tokens/s | speed-up | eval s | eval speed-up |",
             "|---|---|---|---|---|---|---|---|"]
    notes = []
    for case in args.cases.split(","):
        domain_name, precision = case.split(":")
        result = compare(domain_name, args.preset, precision, args.rounds, args.steps_per_round, args.warmup,
                         args.eval_rounds)
        lines += report(f"{domain_name} {args.preset} {precision}", result)
        notes.append(f"{case}: same step losses both paths: {result['same_losses']}, "
                     f"same validation loss: {result['same_eval']}")
    load_after = os.getloadavg()
    print(f"`{args.preset}` presets, adam, {torch.get_num_threads()} torch thread(s), {os.cpu_count()} CPUs, "
          f"{args.rounds} rounds x {args.steps_per_round} steps interleaved (median); load average (1/5/15 min) "
          f"{'/'.join(f'{x:.1f}' for x in load_before)} before, {'/'.join(f'{x:.1f}' for x in load_after)} after\n")
    print("\n".join(lines))
    print()
    print("\n".join(notes))


if __name__ == "__main__":
    main()
