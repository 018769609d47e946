"""The LM domains' regime baselines on the smoke preset's real data, against dense counts made in the test.

The test's n-gram models are scored by the domains' own evaluation (:func:`domains.lm.causal_lm.evaluate_lm`
over ``TextData.val_batches``), so the check also pins that the baselines use exactly the model's positions.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import domains
from benchmarks.protocol.hparams import default_hparams
from domains.base import RunContext
from domains.llama.domain import build_model
from domains.lm import baselines as lm_baselines
from domains.lm import ngram
from domains.lm.causal_lm import evaluate_lm
from domains.lm.textdata import TextData
from tests.support.loggers import ListLogger


@pytest.fixture(scope="module")
def llama():
    return domains.get("llama")


@pytest.fixture(scope="module")
def smoke(llama):
    config = llama.config("smoke")
    data = TextData.load(config.dataset, config.vocab_size, config.seq_len, config.eval_tokens, config.tokenizer)
    # every training block, read the way a run reads them: the first epoch of the training stream (any order)
    n_blocks = data.info["train_tokens"] // config.seq_len
    train = data.train_batch(0, n_blocks, seed=0).numpy()
    return config, data, train


class TableLM(torch.nn.Module):
    """A causal LM whose next-token log-probabilities come from a table indexed by the current token."""

    def __init__(self, log_probs: np.ndarray):
        super().__init__()
        self.table = torch.from_numpy(log_probs)

    def forward(self, input_ids):
        return SimpleNamespace(logits=self.table[input_ids])


def dense_models(train: np.ndarray, vocab: int, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """(V, V) next-token log-probability tables of the add-one unigram and the interpolated bigram."""
    unigram = (np.bincount(train.ravel(), minlength=vocab) + 1.0) / (train.size + vocab)
    pairs = np.zeros((vocab, vocab))
    np.add.at(pairs, (train[:, :-1].ravel(), train[:, 1:].ravel()), 1.0)
    contexts = pairs.sum(axis=1, keepdims=True)
    bigram = np.where(contexts > 0, lam * pairs / np.maximum(contexts, 1) + (1 - lam) * unigram, unigram)
    return np.log(np.broadcast_to(unigram, (vocab, vocab))).copy(), np.log(bigram)


def model_ppl(table: np.ndarray, data: TextData, config) -> float:
    return model_ppl_of(TableLM(table), data, config)


def test_llama_baselines_are_the_perplexities_of_counted_models_under_the_models_evaluation(llama, smoke):
    config, data, train = smoke
    values = llama.baselines(config, seed=0)
    assert set(values) == {"unigram", "bigram"} and llama.gate_baselines == ("unigram", "bigram")
    lam = ngram.best_lambda(train, data.vocab_size)  # Jelinek-Mercer weight picked on held-out training blocks
    assert 0 < lam < 1
    unigram_table, bigram_table = dense_models(train, data.vocab_size, lam)
    # evaluate_lm takes the cross-entropy in float32: agreement to float32 rounding
    assert values["unigram"] == pytest.approx(model_ppl(unigram_table, data, config), rel=1e-5)
    assert values["bigram"] == pytest.approx(model_ppl(bigram_table, data, config), rel=1e-5)
    assert values["bigram"] < 0.5 * values["unigram"] < data.vocab_size


def test_moe_baselines_are_log_perplexities_of_the_same_data(llama, smoke):
    moe = domains.get("moe")
    config = moe.config("smoke")
    assert moe.metric == "val_loss"
    assert (config.vocab_size, config.seq_len, config.eval_tokens) == (smoke[0].vocab_size, smoke[0].seq_len,
                                                                       smoke[0].eval_tokens)
    ppl = llama.baselines(smoke[0], seed=0)
    assert moe.baselines(config, seed=3) == pytest.approx({name: math.log(value) for name, value in ppl.items()})
    assert moe.gate_baselines == ("unigram", "bigram")


def test_deterministic_seed_free_and_none_for_streamed_c4(llama, smoke):
    config = smoke[0]
    first = llama.baselines(config, seed=0)
    lm_baselines._CACHE.clear()  # recomputed, not read back
    assert llama.baselines(config, seed=7) == first
    assert llama.baselines(llama.config("paper"), seed=0) == {}  # C4 streams: no training split to count (no hub call)


def test_an_untrained_model_is_worse_than_the_unigram_and_training_beats_it(llama, smoke):
    config = llama.config("smoke", {"steps": 60})
    values = llama.baselines(config, seed=0)
    data = smoke[1]
    fresh = build_model(config, data.vocab_size, seed=0)
    assert model_ppl_of(fresh, data, config) > values["unigram"]  # a fresh model is ~uniform over the vocabulary
    metrics = llama.run(config, RunContext(recipe="adam", hparams=default_hparams(llama, "adam", config), seed=0,
                                           logger=ListLogger()))
    assert metrics["val_ppl"] < values["unigram"]  # 60 smoke steps learn more than token frequencies


def model_ppl_of(model, data: TextData, config) -> float:
    return evaluate_lm(model, data.val_batches(config.eval_batch_size), torch.device("cpu"))["val_ppl"]
