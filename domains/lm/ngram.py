"""Trivial language-model baselines: unigram and interpolated bigram perplexity counted on training tokens.

They are the regime gate of the LM domains (a trained model that does not beat a bigram by a margin has not
learned enough for an optimizer comparison to mean anything). Both are evaluated on exactly the positions the
model is scored on: every token of every validation block except the first of each block, which has no context.

* unigram: add-one smoothed token frequencies of the training tokens;
* bigram: ``P(w | v) = lam * c(v, w) / c(v) + (1 - lam) * P_unigram(w)`` (Jelinek–Mercer), with pairs counted
  inside training blocks (what the model sees) and ``lam`` chosen on the last 10% of the training blocks (counts
  from the rest) before the counts are taken over all of them; ``c(v) = 0`` falls back to the unigram.

Counts are sparse (sorted pair codes), so a 32k vocabulary costs memory in the number of distinct pairs only.
"""

from __future__ import annotations

import math

import numpy as np

LAMBDAS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95
HELD_OUT_FRACTION = 0.1


class _Counts:
    """Unigram and bigram counts of token blocks ``(n, L)``."""

    def __init__(self, blocks: np.ndarray, vocab_size: int):
        blocks = np.asarray(blocks, dtype=np.int64)
        self.vocab_size = vocab_size
        self.unigram = np.bincount(blocks.ravel(), minlength=vocab_size).astype(np.float64)
        prev, nxt = blocks[:, :-1].ravel(), blocks[:, 1:].ravel()
        self.pair_codes, self.pair_counts = np.unique(prev * vocab_size + nxt, return_counts=True)
        self.context_counts = np.bincount(prev, minlength=vocab_size).astype(np.float64)

    def unigram_prob(self, tokens: np.ndarray) -> np.ndarray:
        return (self.unigram[tokens] + 1.0) / (self.unigram.sum() + self.vocab_size)

    def pair_count(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        codes = prev * self.vocab_size + nxt
        where = np.searchsorted(self.pair_codes, codes)
        where = np.minimum(where, len(self.pair_codes) - 1)
        return np.where(self.pair_codes[where] == codes, self.pair_counts[where], 0).astype(np.float64)

    def bigram_prob(self, prev: np.ndarray, nxt: np.ndarray, lam: float) -> np.ndarray:
        uni = self.unigram_prob(nxt)
        context = self.context_counts[prev]
        ml = np.divide(self.pair_count(prev, nxt), context, out=np.zeros_like(uni), where=context > 0)
        return np.where(context > 0, lam * ml + (1 - lam) * uni, uni)


def _scored(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    blocks = np.asarray(blocks, dtype=np.int64)
    return blocks[:, :-1].ravel(), blocks[:, 1:].ravel()


def _perplexity(probs: np.ndarray) -> float:
    return math.exp(-float(np.log(probs).mean()))


def best_lambda(train_blocks: np.ndarray, vocab_size: int) -> float:
    """The interpolation weight with the lowest bigram perplexity on the last 10% of the training blocks."""
    train_blocks = np.asarray(train_blocks, dtype=np.int64)
    held = max(1, int(round(len(train_blocks) * HELD_OUT_FRACTION)))
    if held >= len(train_blocks):
        return 0.5
    counts = _Counts(train_blocks[:-held], vocab_size)
    prev, nxt = _scored(train_blocks[-held:])
    return min(LAMBDAS, key=lambda lam: _perplexity(counts.bigram_prob(prev, nxt, lam)))


def ngram_perplexities(train_blocks: np.ndarray, val_blocks: np.ndarray, vocab_size: int) -> dict[str, float]:
    """``{"unigram_ppl", "bigram_ppl", "bigram_lambda"}`` of token blocks ``(n, L)`` (see the module docstring)."""
    lam = best_lambda(train_blocks, vocab_size)
    counts = _Counts(train_blocks, vocab_size)
    prev, nxt = _scored(val_blocks)
    return {
        "unigram_ppl": _perplexity(counts.unigram_prob(nxt)),
        "bigram_ppl": _perplexity(counts.bigram_prob(prev, nxt, lam)),
        "bigram_lambda": lam,
    }
