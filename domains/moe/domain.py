"""The ``moe`` domain: OLMoE mixture-of-experts LM pretraining (SPEC §2.2, claim C11).

What is trained: ``transformers.OlmoeForCausalLM`` (top-k routed SwiGLU experts, QK-norm attention) at
the paper's size, OLMoE-1B-7B (hidden 2048, 16 layers, 16 heads, 64 experts, top-8, expert
intermediate 1024; BF16 autocast (``compute=bf16``), 3000 steps, LR 1e-4 for every recipe, validation
at 1000/2000/3000), or shrunk for CPUs (``nano``/``micro``/``mini``: 4-8 experts, top-2, hidden 64-128). Data: the
text pipeline it shares with ``llama`` (:class:`domains.lm.textdata.TextData`; offline Shakespeare by default, C4 with the
T5 tokenizer at the paper preset). Metric: ``val_loss``, the token-weighted next-token loss on the
held-out budget (:func:`domains.lm.causal_lm.evaluate_lm`), lower is better; ``val_ppl`` alongside.

Training loss = next-token cross-entropy (the model's loss with labels) + ``router_aux_loss_coef`` x
the load-balancing loss + ``router_z_loss_coef`` x the router z-loss (OLMoE trained with 0.01 and
0.001). ``balance_loss`` picks the load-balancing loss: ``per_layer`` (default; OLMoE's own, computed per
layer, :func:`domains.moe.routing.load_balancing_loss`) or ``transformers`` (the model's built-in
``aux_loss``, which pools the layers before the product, transformers issue #28255). transformers' OLMoE
has no router z-loss; :func:`domains.moe.routing.router_z_loss` adds it. With ``micro_batch_size`` set (the
paper preset: 8 rows per rank) each rank's batch is run in micro-batches with gradient accumulation
(the trainer's gradient accumulation); the router losses and telemetry are then per micro-batch, averaged.

Telemetry, besides the trainer's: per step ``lm_loss``, ``aux_loss``, ``z_loss`` and the expert-load
balance of the batch (``load_cv_mean``, ``load_cv_max``: coefficient of variation of the per-expert
token fractions, mean and worst layer); at every evaluation the same balance on the validation tokens
and the fractions themselves as eval series ``expert_load/L{layer}/E{expert}`` (each layer sums to 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from domains.base import Domain, RunContext, RunProfile
from domains.fields import at_least, check, one_of
from domains.lm.baselines import ngram_perplexity_baselines
from domains.lm.causal_lm import evaluate_lm, next_token_cross_entropy
from domains.lm.config import LMConfig, lm_rules
from domains.lm.precision import NO_QUANT, precision_class, resolve_alias
from domains.lm.textdata import TextData
from domains.moe.routing import (
    RouterLoadMeter,
    balance_summary,
    expert_load,
    load_balancing_loss,
    load_series,
    router_z_loss,
)
from domains.training import TrainingJob, rank_and_world

# hidden, expert intermediate, attention heads, layers, experts, experts per token. The CPU sizes keep
# OLMoE's active MLP width (top_k x intermediate = 4 x hidden).
SIZES = {
    "nano": (64, 128, 4, 2, 4, 2),
    "micro": (128, 256, 4, 2, 8, 2),
    "mini": (128, 256, 4, 4, 8, 2),
    "1B-7B": (2048, 1024, 16, 16, 64, 8),
}
QUANT_FORMATS = (NO_QUANT,)  # the MoE runs are 16-bit only (the paper's OLMoE runs): no QAT here
BALANCE_LOSSES = ("per_layer", "transformers")
PAPER_LR = 1e-4  # the paper's LR for Adam and Stable-SPAM on OLMoE-1B-7B
# Peak LR of Adam-like recipes at the CPU sizes. Checked on "micro" (quick preset, Adam): LR 1e-3 / 3e-3 / 1e-2 ->
# val_loss 5.27 / 5.01 / 5.30.
_CPU_LR = {"nano": 5e-3, "micro": 3e-3, "mini": 3e-3}


@dataclass
class MoeConfig(LMConfig):
    """One OLMoE pretraining run: the shared LM fields (:class:`domains.lm.config.LMConfig`; ``compute`` fp32 or
    bf16, ``quant`` none only) with this domain's defaults, and the router losses. The CPU presets compute in fp32
    (bf16 is ~15x slower than fp32 on CPU in torch), the ``paper`` preset in bf16 as OLMoE did."""

    balance_loss: str = "per_layer"  # per_layer (OLMoE's) or transformers (the model's pooled aux_loss)
    router_aux_loss_coef: float = 0.01  # load-balancing loss weight (OLMoE)
    router_z_loss_coef: float = 0.001  # router z-loss weight (OLMoE); 0 turns it off
    vocab_size: int = 2048
    seq_len: int = 64
    steps: int = 240
    eval_every: int = 80
    eval_tokens: int = 32768


class MoeDomain(Domain):
    """OLMoE mixture-of-experts pretraining (metric: validation loss, lower is better)."""

    name = "moe"
    metric = "val_loss"
    higher_is_better = False
    # val_loss is log-perplexity: the regime gate is perplexity 10% below the bigram's, as for llama
    gate_scale = "log"
    budget_unit = "optimizer steps"
    default_study = "moe"
    Config = MoeConfig
    # The expert-load heat map of the outputs: which logged eval series form a (layer x expert) matrix.
    share_matrices = {"expert_load": {
        "series": "expert_load/L{row}/E{column}", "title": "Expert load (fraction of top-k assignments)",
        "rows": "layer", "columns": "expert", "trend": "load_cv_mean", "trend_title": "load imbalance during training",
        "trend_label": "coefficient of variation of the load (mean over layers)"}}
    # Vocabulary/sequence settings match the llama presets, so both domains share the same cached TextData.
    # Measured cost of one Adam run, in CPU seconds on one thread (imports and data included): smoke ~10, quick ~40.
    presets = {
        "smoke": {"size": "nano", "vocab_size": 1024, "seq_len": 64, "batch_size": 8, "steps": 30, "eval_every": 10,
                  "eval_tokens": 4096},
        "quick": {"size": "micro", "vocab_size": 2048, "seq_len": 64, "batch_size": 16, "steps": 120,
                  "eval_every": 40, "eval_tokens": 16384},
        # The committed studies, ~2.5 min per run on one core. Calibrated (issue 13; Adam, LR 3e-3, seed 0): the
        # former 180 steps of "mini" on a 4096 vocabulary ended at 5.37 nats, above the bigram's 4.79. On the
        # llama cpu preset's data (vocabulary 2048, 64-token blocks; bigram 4.445 nats), 1000 steps (1.02M tokens)
        # reach 4.265 (micro) and 4.288 (mini, 1.3x the time): micro, under the gate's 4.339 (perplexity 0.9x the
        # bigram's) at 0.835x the bigram's perplexity.
        "cpu": {"size": "micro", "vocab_size": 2048, "seq_len": 64, "batch_size": 16, "steps": 1000,
                "eval_every": 250, "eval_tokens": 32768},
        # OLMoE-1B-7B as in the paper, on the llama paper preset's data (C4, T5 tokenizer, 512 x 256 tokens).
        # Its weights, gradients and fp32 Adam state (~112 GB) need more than one GPU's memory.
        "paper": {"size": "1B-7B", "compute": "bf16", "dataset": "c4", "tokenizer": "t5-base", "vocab_size": 32000,
                  "seq_len": 256, "batch_size": 512, "micro_batch_size": 8, "steps": 3000, "eval_every": 1000,
                  "eval_tokens": 10_000_000, "eval_batch_size": 64, "checkpoint_every": 500},
    }

    def config(self, preset: str = "quick", overrides=None) -> MoeConfig:
        """The preset's config with ``overrides``; an old ``precision`` override is resolved into ``compute`` and
        ``quant`` (:func:`domains.lm.precision.resolve_alias`)."""
        return super().config(preset, resolve_alias(overrides, self.name))

    def validate(self, config: MoeConfig) -> None:
        """Reject unknown names and impossible values (each message names the field)."""
        check(self.name, lm_rules(config, SIZES, QUANT_FORMATS), one_of(BALANCE_LOSSES, config, "balance_loss"),
              at_least(0, config, "router_aux_loss_coef", "router_z_loss_coef"))

    def run_profile(self, config: MoeConfig) -> RunProfile:
        """Steps; 16-bit (bf16) or 32-bit (fp32); the size's hidden size and heads; the peak LR of Adam-like recipes
        (the paper's 1e-4 at OLMoE-1B-7B, for Adam and Stable-SPAM alike; tuned at the CPU sizes)."""
        hidden, _, heads, *_ = SIZES[config.size]
        return RunProfile(optimizer_steps=config.steps, precision_class=precision_class(config), hidden_size=hidden,
                          heads=heads, base_lr=_CPU_LR.get(config.size, PAPER_LR))

    gate_baselines = ("unigram", "bigram")

    def regime_note(self, config) -> str:
        """More tokens: the cpu preset's micro model needs its 1000 steps to clear the gate."""
        return "more training tokens (the cpu preset's micro model clears the gate after about 1000 steps)"

    def baselines(self, config: MoeConfig, seed: int) -> dict[str, float]:
        """Unigram and bigram *log*-perplexity (nats per token, the unit of ``val_loss``) counted on the training
        blocks, on the run's validation blocks (:mod:`domains.lm.baselines`). ``{}`` for streamed C4."""
        return {name: math.log(ppl) for name, ppl in ngram_perplexity_baselines(config).items()}

    def run(self, config: MoeConfig, ctx: RunContext) -> dict[str, float]:
        """Pretrain from a seeded initialisation through the shared trainer; return val_loss and friends."""
        return self.build_job(config, ctx).run(ctx)

    def build_job(self, config: MoeConfig, ctx: RunContext) -> TrainingJob:
        """Everything :func:`domains.training.train` needs for this run (data, model, loss, evaluation, loop)."""
        rank, world = rank_and_world()
        data = text_data(config)
        model = build_model(config, data.vocab_size, ctx.seed)
        hidden, _, _, _, experts, top_k = SIZES[config.size]
        ctx.logger.log_info(parameters=sum(p.numel() for p in model.parameters()),
                            active_parameters=active_parameters(model), hidden_size=hidden, experts=experts,
                            experts_per_token=top_k, precision=config.precision, compute=config.compute,
                            val_tokens=data.val_tokens,
                            world_size=world, **data.info)
        routers = [layer.mlp.gate for layer in model.model.layers]

        def batch_at(step: int) -> torch.Tensor:
            return data.train_batch(step, config.batch_size, ctx.seed, rank, world).to(ctx.device)

        def loss_fn(net, ids: torch.Tensor):
            return moe_loss(net, ids, config)

        def evaluate(net, step: int) -> tuple[dict[str, float], dict[str, float]]:
            """Validation loss and expert-load balance (metrics), the expert-load fractions (series)."""
            with RouterLoadMeter(routers, top_k) as meter:
                values = evaluate_lm(net, data.val_batches(config.eval_batch_size), ctx.device)
            load = meter.load()
            return {**values, **{key: float(value) for key, value in balance_summary(load).items()}}, load_series(load)

        return TrainingJob(model, batch_at, loss_fn, evaluate, config.train_loop())


def text_data(config: MoeConfig) -> TextData:
    """The LM text pipeline (:mod:`domains.lm.textdata`) for this config (the same cached object for the same settings)."""
    return TextData.load(config.dataset, config.vocab_size, config.seq_len, config.eval_tokens, config.tokenizer)


def build_model(config: MoeConfig, vocab_size: int, seed: int) -> torch.nn.Module:
    """A freshly initialised OlmoeForCausalLM of ``config.size`` (same weights for the same seed,
    drawn from a forked RNG whatever the caller did with the global one)."""
    from transformers import OlmoeConfig, OlmoeForCausalLM

    hidden, intermediate, heads, layers, experts, top_k = SIZES[config.size]
    hf_config = OlmoeConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate,
                            num_attention_heads=heads, num_key_value_heads=heads, num_hidden_layers=layers,
                            num_experts=experts, num_experts_per_tok=top_k, norm_topk_prob=False,
                            router_aux_loss_coef=0.0,  # moe_loss adds the balance loss (so output.loss is the LM loss)
                            max_position_embeddings=config.seq_len,
                            tie_word_embeddings=False, use_cache=False,
                            # OLMoE's default pad id 1 would freeze that token's embedding; our data has no padding
                            pad_token_id=None, bos_token_id=None, eos_token_id=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return OlmoeForCausalLM(hf_config)


def active_parameters(model: torch.nn.Module) -> int:
    """Parameters one token uses: all but the experts it is not routed to (OLMoE-1B-7B: ~1.3B of ~6.9B)."""
    config = model.config
    idle_share = 1 - config.num_experts_per_tok / config.num_experts
    expert_weights = sum(p.numel() for layer in model.model.layers for p in layer.mlp.experts.parameters())
    return round(sum(p.numel() for p in model.parameters()) - idle_share * expert_weights)


def moe_loss(model: torch.nn.Module, ids: torch.Tensor, config: MoeConfig) -> tuple[torch.Tensor, dict]:
    """The training loss of a batch ``ids`` (B, T) and its telemetry.

    Loss = mean next-token cross-entropy (the model's loss with labels) + ``router_aux_loss_coef`` x the
    ``balance_loss`` + ``router_z_loss_coef`` x :func:`router_z_loss`. Extras (detached): ``lm_loss``,
    ``aux_loss``, ``z_loss`` and the batch's expert-load balance ``load_cv_mean`` / ``load_cv_max``.
    ``model`` (built by :func:`build_model`) may be wrapped in DistributedDataParallel.
    """
    top_k = SIZES[config.size][5]
    output = model(input_ids=ids, output_router_logits=True)
    # transformers' own loss (labels=ids) bit for bit, without its copies of the logits
    lm_loss = next_token_cross_entropy(output.logits, ids, ignore_last=True)
    logits = output.router_logits
    aux_loss = load_balancing_loss(logits, top_k) if config.balance_loss == "per_layer" else output.aux_loss
    z_loss = router_z_loss(logits)
    loss = lm_loss + config.router_aux_loss_coef * aux_loss + config.router_z_loss_coef * z_loss
    extras = {"lm_loss": lm_loss.detach(), "aux_loss": aux_loss.detach(), "z_loss": z_loss.detach(),
              **balance_summary(expert_load(logits, top_k))}
    return loss, extras
