"""The LM domains' regime baselines: unigram and bigram perplexity on the run's own validation blocks.

Both n-gram models are counted on every block of the training split of the run's data config
(:mod:`domains.lm.ngram`) and scored on exactly the validation blocks :func:`domains.lm.causal_lm.evaluate_lm`
scores the model on (same tokens, same positions: every token but the first of each block). They depend on the
data config only (dataset, tokenizer, vocabulary, block length, validation budget), not on the model or the
seed, so each is computed once per process.

A streamed training split (``dataset="c4"``) has no "every training block": no baselines (regime unknown).
"""

from __future__ import annotations

from domains.lm import ngram
from domains.lm.config import LMConfig
from domains.lm.textdata import TextData

STREAMED_DATASETS = ("c4",)

_CACHE: dict[tuple, dict[str, float]] = {}


def data_key(config: LMConfig) -> tuple:
    """What the baselines depend on: the arguments of :meth:`TextData.load`."""
    return (config.dataset, config.vocab_size, config.seq_len, config.eval_tokens, config.tokenizer)


def ngram_perplexity_baselines(config: LMConfig) -> dict[str, float]:
    """``{"unigram": ppl, "bigram": ppl}`` on the config's validation blocks; ``{}`` for a streamed data set."""
    if config.dataset in STREAMED_DATASETS:
        return {}
    key = data_key(config)
    if key not in _CACHE:
        data = TextData.load(*key)
        train = data.training_blocks()
        if train is None:
            return {}
        values = ngram.ngram_perplexities(train.numpy(), data.val_blocks.numpy(), data.vocab_size)
        _CACHE[key] = {"unigram": values["unigram_ppl"], "bigram": values["bigram_ppl"]}
    return dict(_CACHE[key])
