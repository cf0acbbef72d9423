"""Sentence generation with the tutorial's rules, several sentences at a time.

Start from ``SENTENCE_START``; draw each next word from the model's distribution (sharpened or
flattened by a temperature); ``UNKNOWN_TOKEN`` is never emitted (drawing it means drawing again,
which is the same as renormalising without it); a sentence that reaches ``max_length`` tokens is
dropped, and so is one shorter than ``min_length`` tokens (both counts include the start and end
markers, as in the tutorial's ``generate_sentence``). Candidates run in parallel as the columns of
one batch, so ten sentences cost about as much as one.
"""

from __future__ import annotations

import numpy as np

from models.data import SENTENCE_END, SENTENCE_START, Vocabulary


def next_word_distribution(
    probs: np.ndarray, temperature: float, banned: list[int] | None = None
) -> np.ndarray:
    """Rows of ``probs`` raised to ``1 / temperature``, ``banned`` columns zeroed, renormalised."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    logp = np.log(np.maximum(probs.astype(np.float64), 1e-300)) / temperature
    logp -= logp.max(axis=-1, keepdims=True)
    p = np.exp(logp)
    if banned:
        p[..., banned] = 0.0
    total = p.sum(axis=-1, keepdims=True)
    return p / np.where(total > 0, total, 1.0)


def generate_sentences(
    model,
    vocab: Vocabulary,
    n: int = 10,
    rng: np.random.Generator | None = None,
    temperature: float = 1.0,
    min_length: int = 5,
    max_length: int = 100,
    max_rounds: int = 20,
) -> list[list[str]]:
    """Up to ``n`` sentences (lists of words, markers removed) sampled from ``model``.

    ``model`` provides ``initial_states(batch)`` and ``step(x_t, states) -> (probs, states)``.
    At most ``max_rounds`` rounds of ``2 n`` parallel candidates are tried, so a model that never
    ends a sentence returns fewer than ``n`` instead of looping forever.
    """
    rng = rng if rng is not None else np.random.default_rng()
    start = vocab.word_to_index[SENTENCE_START]
    end = vocab.word_to_index[SENTENCE_END]
    banned = [vocab.unknown_index, start]
    out: list[list[str]] = []
    for _ in range(max_rounds):
        if len(out) >= n:
            break
        batch = 2 * (n - len(out))
        states = model.initial_states(batch)
        seqs = [[start] for _ in range(batch)]
        done = np.zeros(batch, dtype=bool)
        x_t = np.full(batch, start, dtype=np.int32)
        for _step in range(max_length - 1):
            probs, states = model.step(x_t, states)
            p = next_word_distribution(probs, temperature, banned)
            # inverse-CDF draws: one uniform per row
            u = rng.random(batch)[:, None]
            words = (p.cumsum(axis=-1) < u).sum(axis=-1).clip(0, p.shape[-1] - 1)
            for b in np.flatnonzero(~done):
                seqs[b].append(int(words[b]))
                done[b] = words[b] == end
            if done.all():
                break
            x_t = words.astype(np.int32)
        for b in range(batch):
            s = seqs[b]
            if done[b] and min_length <= len(s) <= max_length and len(out) < n:
                out.append(vocab.decode(s[1:-1]))
    return out
