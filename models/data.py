"""Corpora, vocabulary and minibatches for the word- and character-level language models.

Pure Python + NumPy + NLTK (no symgraph).  The pipeline follows the classic RNN
language-model tutorial: read comments, split them into sentences, tokenize,
wrap each sentence in ``SENTENCE_START ... SENTENCE_END``, keep the ``size - 1``
most frequent words plus ``UNKNOWN_TOKEN``, and train on ``X = s[:-1]``,
``Y = s[1:]``.  Sources: the ``chitchat-dataset`` package (default, offline), a
CSV file with a ``body`` column (the tutorial's Reddit dump) or a text file.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nltk
import numpy as np

from models.readers import (
    CorpusNotInstalledError,
    DataError,
    SkipReport,
    load_chitchat_comments,
    load_shakespeare_text,
    read_csv_comments,
    read_text_file,
)
from models.tokenization import (
    SENTENCE_END,
    SENTENCE_START,
    UNKNOWN_TOKEN,
    iter_token_sentences,
    sentence_split,
    tokenize_comments,
    word_tokenize,
)

__all__ = [
    "SENTENCE_START", "SENTENCE_END", "UNKNOWN_TOKEN", "Corpus", "CorpusNotInstalledError",
    "DataError", "SkipReport", "Vocabulary", "bucket_batches", "load_chitchat_comments",
    "load_corpus", "load_shakespeare_text", "make_training_pairs", "read_csv_comments",
    "read_text_file", "sentence_split", "tokenize_comments", "train_validation_split",
    "word_tokenize",
]  # fmt: skip

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- vocabulary


class Vocabulary:
    """Word <-> index mapping: the most frequent words plus ``UNKNOWN_TOKEN`` (last index)."""

    def __init__(
        self,
        index_to_word: Sequence[str],
        unknown_token: str = UNKNOWN_TOKEN,
        counts: Sequence[int] | None = None,
    ) -> None:
        words = list(index_to_word)
        if unknown_token not in words:
            words.append(unknown_token)
        if len(set(words)) != len(words):
            raise ValueError("index_to_word contains duplicates")
        if counts is not None and len(counts) != len(words):
            raise ValueError("counts must have one entry per word")
        self.index_to_word: list[str] = words
        self.word_to_index: dict[str, int] = {w: i for i, w in enumerate(words)}
        self.unknown_token = unknown_token
        self.counts: list[int] | None = None if counts is None else [int(c) for c in counts]

    @classmethod
    def build(cls, token_sentences: Iterable[Sequence[str]], size: int = 8000) -> Vocabulary:
        """The ``size - 1`` most frequent tokens (``nltk.FreqDist``) plus ``UNKNOWN_TOKEN``.

        Ties are broken alphabetically, so the result does not depend on sentence order.
        The stored count of ``UNKNOWN_TOKEN`` is the number of out-of-vocabulary tokens.
        """
        if size < 1:
            raise ValueError("size must be >= 1 (room for UNKNOWN_TOKEN)")
        freq = nltk.FreqDist(itertools.chain.from_iterable(token_sentences))
        ranked = sorted(
            ((w, c) for w, c in freq.items() if w != UNKNOWN_TOKEN), key=lambda wc: (-wc[1], wc[0])
        )
        kept = ranked[: size - 1]
        unknown = freq.N() - sum(c for _, c in kept)
        return cls([w for w, _ in kept], UNKNOWN_TOKEN, [c for _, c in kept] + [unknown])

    def __len__(self) -> int:
        return len(self.index_to_word)

    def __contains__(self, word: object) -> bool:
        return word in self.word_to_index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return (self.index_to_word, self.unknown_token, self.counts) == (
            other.index_to_word,
            other.unknown_token,
            other.counts,
        )

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)}, unknown_token={self.unknown_token!r})"

    @property
    def unknown_index(self) -> int:
        return self.word_to_index[self.unknown_token]

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """Token ids as an int32 array; unknown words map to :attr:`unknown_index`."""
        get, unk = self.word_to_index.get, self.unknown_index
        return np.array([get(t, unk) for t in tokens], dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words for token ids (IndexError for ids outside ``[0, len(self))``)."""
        out = []
        for i in np.asarray(ids, dtype=np.int64).ravel().tolist():
            if not 0 <= i < len(self):
                raise IndexError(f"token id {i} outside vocabulary of size {len(self)}")
            out.append(self.index_to_word[i])
        return out

    def coverage(
        self,
        token_sentences: Iterable[Sequence[str]],
        ignore: Sequence[str] = (SENTENCE_START, SENTENCE_END),
    ) -> float:
        """Fraction of tokens (``ignore`` excluded) that are in the vocabulary."""
        skip, total, known = set(ignore), 0, 0
        for sentence in token_sentences:
            for t in sentence:
                if t not in skip:
                    total += 1
                    known += t in self.word_to_index and t != self.unknown_token
        return known / total if total else 1.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict; :meth:`from_json` restores an equal Vocabulary."""
        return {
            "format": "symgraph-vocabulary",
            "version": 1,
            "unknown_token": self.unknown_token,
            "index_to_word": list(self.index_to_word),
            "counts": None if self.counts is None else list(self.counts),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Vocabulary:
        """Inverse of :meth:`to_json`."""
        if data.get("format") != "symgraph-vocabulary" or data.get("version") != 1:
            raise ValueError("not a symgraph-vocabulary version 1 dict")
        words, unknown = data["index_to_word"], data["unknown_token"]
        if unknown not in words:
            raise ValueError("unknown_token missing from index_to_word")
        return cls(words, unknown, data.get("counts"))


# ----------------------------------------------------------------------------- training data


def make_training_pairs(
    encoded_sentences: Iterable[np.ndarray],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``X = s[:-1]``, ``Y = s[1:]`` (int32) per sentence; sentences shorter than 2 are dropped."""
    X, Y = [], []
    for s in encoded_sentences:
        s = np.asarray(s, dtype=np.int32)
        if s.ndim != 1:
            raise ValueError("each encoded sentence must be 1-D")
        if len(s) >= 2:
            X.append(s[:-1].copy())
            Y.append(s[1:].copy())
    return X, Y


def train_validation_split(
    items: Sequence[Any], valid_fraction: float = 0.05, seed: int = 0
) -> tuple[list[Any], list[Any]]:
    """Deterministic random split; both parts keep the original relative order.

    ``round(len(items) * valid_fraction)`` items go to validation, but never all
    of them when there are any (the training part is not left empty).
    """
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError("valid_fraction must be in [0, 1)")
    n = len(items)
    n_valid = min(int(round(n * valid_fraction)), max(n - 1, 0))
    chosen = np.zeros(n, dtype=bool)
    chosen[np.random.default_rng(seed).permutation(n)[:n_valid]] = True
    return [x for x, c in zip(items, chosen) if not c], [x for x, c in zip(items, chosen) if c]


Batch = tuple[np.ndarray, np.ndarray, np.ndarray]


def bucket_batches(
    X: Sequence[np.ndarray],
    Y: Sequence[np.ndarray],
    batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    bucket_chunks: int = 20,
    drop_last: bool = False,
) -> list[Batch]:
    """Time-major minibatches ``(x[T, B] int32, y[T, B] int32, mask[T, B] float32)``.

    Sentences are shuffled (``seed``), cut into chunks of ``bucket_chunks * batch_size``,
    sorted by length inside each chunk and cut into batches, so padding is small;
    the batch order is shuffled again.  Padding is 0 with mask 0.  With
    ``batch_size=1`` each batch is one sentence, in the order of the shuffle (or
    the original order when ``shuffle=False``).  The last batch may be smaller
    unless ``drop_last``.
    """
    if len(X) != len(Y):
        raise ValueError(f"X and Y differ in length ({len(X)} vs {len(Y)})")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    lengths = np.array([len(x) for x in X], dtype=np.int64)
    if any(len(y) != n for y, n in zip(Y, lengths)):
        raise ValueError("each Y[i] must have the length of X[i]")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X)) if shuffle else np.arange(len(X))
    groups: list[np.ndarray] = []
    if batch_size == 1:
        groups = [order[i : i + 1] for i in range(len(order))]
    else:
        chunk = batch_size * max(1, bucket_chunks)
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            part = part[np.argsort(lengths[part], kind="stable")]
            groups.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
        if drop_last:
            groups = [g for g in groups if len(g) == batch_size]
        if shuffle:
            groups = [groups[i] for i in rng.permutation(len(groups))]
    batches = []
    for g in groups:
        T = int(lengths[g].max()) if len(g) else 0
        x = np.zeros((T, len(g)), dtype=np.int32)
        y = np.zeros((T, len(g)), dtype=np.int32)
        mask = np.zeros((T, len(g)), dtype=np.float32)
        for b, i in enumerate(g):
            n = lengths[i]
            x[:n, b], y[:n, b], mask[:n, b] = X[i], Y[i], 1.0
        batches.append((x, y, mask))
    return batches


# ----------------------------------------------------------------------------- corpus


@dataclass
class Corpus:
    """A tokenized, encoded corpus split into training and validation pairs."""

    vocab: Vocabulary
    X_train: list[np.ndarray]
    Y_train: list[np.ndarray]
    X_valid: list[np.ndarray]
    Y_valid: list[np.ndarray]
    stats: dict[str, Any]


def _read_source(
    source: str | os.PathLike, max_comments: int | None, column: str
) -> tuple[list[str], SkipReport]:
    if isinstance(source, str) and source == "chitchat":
        return load_chitchat_comments(limit=max_comments)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"corpus source {str(source)!r}: not 'chitchat' and no such file")
    if path.suffix.lower() == ".csv":
        return read_csv_comments(path, column=column, limit=max_comments)
    return read_text_file(path, limit=max_comments)


def load_corpus(
    source: str | os.PathLike = "chitchat",
    vocab_size: int = 8000,
    max_comments: int | None = None,
    max_sentences: int | None = None,
    min_tokens: int | None = None,
    valid_fraction: float = 0.05,
    seed: int = 0,
    lowercase: bool = True,
    drop_urls: bool = False,
    column: str = "body",
) -> Corpus:
    """Read, tokenize, split (by sentence), build the vocabulary on the training part, encode.

    ``source`` is ``"chitchat"`` (default), a ``.csv`` path (column ``column``) or any
    other text file.  ``max_comments``/``max_sentences`` stop reading/tokenizing early.
    """
    t0 = time.perf_counter()
    comments, report = _read_source(source, max_comments, column)
    counts: dict[str, int] = {}
    sentences = list(
        itertools.islice(
            iter_token_sentences(comments, lowercase, min_tokens, drop_urls, counts),
            max_sentences,
        )
    )
    if not sentences:
        raise DataError(f"corpus {str(source)!r}: no sentences after tokenization")
    train, valid = train_validation_split(sentences, valid_fraction, seed)
    vocab = Vocabulary.build(train, size=vocab_size)
    X_train, Y_train = make_training_pairs(vocab.encode(s) for s in train)
    X_valid, Y_valid = make_training_pairs(vocab.encode(s) for s in valid)
    stats = {
        "source": str(source),
        "comments": len(comments),
        "comments_used": counts["comments"],
        "sentences": len(sentences),
        "tokens": sum(len(s) for s in sentences),  # markers included
        "words": sum(len(s) - 2 for s in sentences),
        "train_sentences": len(train),
        "valid_sentences": len(valid),
        "vocab_size": len(vocab),
        "train_coverage": vocab.coverage(train),
        "valid_coverage": vocab.coverage(valid),
        "skipped": dict(report.skipped),
        "short_sentences": counts["short_sentences"],
        "urls_removed": counts["urls_removed"],
        "encoding": report.encoding,
        "notes": list(report.notes),
        "seconds": time.perf_counter() - t0,
    }
    log.info(
        "corpus %s: %d comments, %d sentences, %d tokens, vocab %d covers %.2f%% (%.1f s)",
        stats["source"], stats["comments_used"], stats["sentences"], stats["tokens"],
        len(vocab), 100 * stats["train_coverage"], stats["seconds"],
    )  # fmt: skip
    return Corpus(vocab, X_train, Y_train, X_valid, Y_valid, stats)
