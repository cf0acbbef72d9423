"""Sampling rules: no UNKNOWN_TOKEN, length limits, temperature."""

from __future__ import annotations

import numpy as np
import pytest

from models.data import SENTENCE_END, SENTENCE_START, Vocabulary
from models.sampling import generate_sentences, next_word_distribution


class Scripted:
    """A fake model whose next-word distribution is fixed: ``probs`` for every step."""

    def __init__(self, probs):
        self.probs = np.asarray(probs, dtype=np.float64)

    def initial_states(self, batch):
        return [np.zeros((1, batch))]

    def step(self, x_t, states):
        return np.tile(self.probs, (len(x_t), 1)), states


@pytest.fixture
def vocab():
    return Vocabulary([SENTENCE_START, SENTENCE_END, "a", "b"])  # + UNKNOWN_TOKEN at index 4


def test_unknown_is_never_emitted_and_lengths_are_respected(vocab):
    # mostly UNKNOWN_TOKEN: it must be redrawn, never returned
    model = Scripted([0.0, 0.2, 0.1, 0.1, 0.6])
    out = generate_sentences(model, vocab, 20, np.random.default_rng(0), min_length=4)
    assert len(out) == 20
    for s in out:
        assert "UNKNOWN_TOKEN" not in s and SENTENCE_START not in s and SENTENCE_END not in s
        assert len(s) + 2 >= 4


def test_a_model_that_never_ends_gives_up(vocab):
    model = Scripted([0.0, 0.0, 0.5, 0.5, 0.0])
    assert generate_sentences(model, vocab, 3, np.random.default_rng(0), max_rounds=2) == []


def test_max_length_drops_long_sentences(vocab):
    model = Scripted([0.0, 0.05, 0.5, 0.45, 0.0])
    out = generate_sentences(model, vocab, 30, np.random.default_rng(1), max_length=6,
                             min_length=0)  # fmt: skip
    assert out and all(len(s) + 2 <= 6 for s in out)


def test_temperature():
    p = np.array([[0.1, 0.2, 0.7]])
    np.testing.assert_allclose(next_word_distribution(p, 1.0), p)
    cold = next_word_distribution(p, 0.1)
    assert cold[0, 2] > 0.99
    hot = next_word_distribution(p, 100.0)
    np.testing.assert_allclose(hot, 1 / 3, atol=0.01)
    np.testing.assert_allclose(next_word_distribution(p, 1.0, banned=[2]), [[1 / 3, 2 / 3, 0]])
    with pytest.raises(ValueError):
        next_word_distribution(p, 0.0)
