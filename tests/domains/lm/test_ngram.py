"""Unigram/bigram baselines against a direct count written out in the test."""

import math
from collections import Counter

import numpy as np
import pytest

from domains.lm import ngram


def brute_force(train, val, vocab, lam):
    uni = Counter(t for row in train for t in row)
    total = sum(uni.values())
    pairs = Counter((row[i], row[i + 1]) for row in train for i in range(len(row) - 1))
    contexts = Counter(row[i] for row in train for i in range(len(row) - 1))
    logs_u, logs_b = [], []
    for row in val:
        for i in range(1, len(row)):
            v, w = row[i - 1], row[i]
            pu = (uni[w] + 1) / (total + vocab)
            pb = lam * pairs[(v, w)] / contexts[v] + (1 - lam) * pu if contexts[v] else pu
            logs_u.append(math.log(pu))
            logs_b.append(math.log(pb))
    return math.exp(-np.mean(logs_u)), math.exp(-np.mean(logs_b))


def test_matches_a_direct_count():
    rng = np.random.default_rng(0)
    vocab = 7
    train = rng.integers(0, vocab, size=(20, 6))
    train[:, 1::2] = (train[:, 0::2] + 1) % vocab  # a learnable bigram structure
    val = rng.integers(0, vocab, size=(4, 6))
    val[:, 1::2] = (val[:, 0::2] + 1) % vocab
    out = ngram.ngram_perplexities(train, val, vocab)
    uni, bi = brute_force(train.tolist(), val.tolist(), vocab, out["bigram_lambda"])
    assert out["unigram_ppl"] == pytest.approx(uni, rel=1e-12)
    assert out["bigram_ppl"] == pytest.approx(bi, rel=1e-12)
    assert out["bigram_ppl"] < out["unigram_ppl"]


def test_hand_computed_unigram():
    # train tokens: 0 0 1 | 0 2 2 -> counts 0:3, 1:1, 2:2 (total 6), vocab 3 -> p = (c+1)/9
    train = np.array([[0, 0, 1], [0, 2, 2]])
    val = np.array([[1, 0, 2]])  # scored tokens: 0 and 2 -> p 4/9 and 3/9
    out = ngram.ngram_perplexities(train, val, 3)
    assert out["unigram_ppl"] == pytest.approx(math.exp(-(math.log(4 / 9) + math.log(3 / 9)) / 2))


def test_unseen_context_falls_back_to_unigram():
    train = np.array([[0, 1, 0, 1]] * 10)
    val = np.array([[2, 0]])  # context 2 never seen
    out = ngram.ngram_perplexities(train, val, 3)
    assert out["bigram_ppl"] == pytest.approx(out["unigram_ppl"])
