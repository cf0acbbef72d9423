"""The benchmark configurations: sizes, initial parameters and training data.

Every implementation of a configuration starts from the same parameter arrays (copies of
``init_params``) and trains on the same sentences (``make_data``), so that one training step of
each can be compared number for number before any timing starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Config:
    """One model and its sizes. ``kind`` selects the model family:

    - ``rnn``: WildML part 2/3 ``RNNTheano`` (U [H, vocab], V [vocab, H], W [H, H]), SGD.
    - ``gru2``: WildML part 4 ``GRUTheano`` (E [H, vocab], two GRU layers with hard-sigmoid gates,
      U/W [6, H, H], b [6, H], V [vocab, H], c [vocab]), RMSProp on every parameter.
    - ``bgru``: a minibatched one-layer GRU (embedding [vocab, emb], U [3, emb, H], W [3, H, H],
      b [3, H], V [H, vocab], c [vocab]), sigmoid gates, mean cross-entropy, SGD.

    ``truncate`` is Theano's ``truncate_gradient``: -1 is full BPTT; k > 0 means the backward
    pass covers only the last k steps (Theano's meaning, which the WildML Theano code passes its
    ``bptt_truncate=4`` to; it is not the per-loss-term truncation of the tutorial's NumPy bptt).
    """

    name: str
    kind: str
    vocab: int
    hidden: int
    steps: int
    batch: int = 1
    emb: int = 0
    truncate: int = -1
    optimizer: str = "sgd"
    lr: float = 0.005
    decay: float = 0.9
    description: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


FULL: dict[str, Config] = {
    c.name: c
    for c in (
        Config(
            "rnn",
            "rnn",
            vocab=8000,
            hidden=100,
            steps=20,
            truncate=-1,
            lr=0.005,
            description="tutorial RNN, full BPTT, SGD",
        ),
        Config(
            "rnn_trunc4",
            "rnn",
            vocab=8000,
            hidden=100,
            steps=20,
            truncate=4,
            lr=0.005,
            description="tutorial RNN, truncate_gradient=4 (Theano's meaning), SGD",
        ),
        Config(
            "gru",
            "gru2",
            vocab=8000,
            hidden=128,
            steps=20,
            optimizer="rmsprop",
            lr=0.001,
            description="tutorial GRU (GRUTheano), 2 layers, RMSProp",
        ),
        Config(
            "gru_batched",
            "bgru",
            vocab=8000,
            hidden=256,
            emb=128,
            steps=32,
            batch=32,
            lr=0.1,
            description="batched GRU, 1 layer, mean cross-entropy, SGD",
        ),
    )
}


def quick(cfg: Config) -> Config:
    """The same model at a size that runs in milliseconds (for smoke tests)."""
    return replace(
        cfg,
        vocab=60,
        hidden=8,
        emb=6 if cfg.emb else 0,
        steps=7,
        batch=3 if cfg.batch > 1 else 1,
        truncate=min(cfg.truncate, 3) if cfg.truncate > 0 else cfg.truncate,
    )


def check_size(cfg: Config) -> Config:
    """Tiny size used for the float64 gradient checks at startup."""
    return replace(quick(cfg), vocab=23, hidden=5, emb=4 if cfg.emb else 0, steps=6)


def _u(rng: np.random.Generator, bound: float, shape: tuple) -> np.ndarray:
    return rng.uniform(-bound, bound, shape)


def init_params(cfg: Config, dtype: str, seed: int = 0, bias_scale: float = 0.0) -> dict:
    """Initial parameters (and RMSProp caches), drawn as the tutorial draws them.

    ``bias_scale`` > 0 gives the biases random values (the tutorial starts them at zero), so that
    the gradient checks exercise every term.
    """
    rng = np.random.default_rng(seed)
    V, H = cfg.vocab, cfg.hidden
    if cfg.kind == "rnn":
        p = {
            "U": _u(rng, np.sqrt(1.0 / V), (H, V)),
            "V": _u(rng, np.sqrt(1.0 / H), (V, H)),
            "W": _u(rng, np.sqrt(1.0 / H), (H, H)),
        }
    elif cfg.kind == "gru2":
        p = {
            "E": _u(rng, np.sqrt(1.0 / V), (H, V)),
            "U": _u(rng, np.sqrt(1.0 / H), (6, H, H)),
            "W": _u(rng, np.sqrt(1.0 / H), (6, H, H)),
            "V": _u(rng, np.sqrt(1.0 / H), (V, H)),
            "b": _u(rng, bias_scale, (6, H)),
            "c": _u(rng, bias_scale, (V,)),
        }
    elif cfg.kind == "bgru":
        Em = cfg.emb
        p = {
            "Emb": _u(rng, np.sqrt(1.0 / Em), (V, Em)),
            "U": _u(rng, np.sqrt(1.0 / Em), (3, Em, H)),
            "W": _u(rng, np.sqrt(1.0 / H), (3, H, H)),
            "b": _u(rng, bias_scale, (3, H)),
            "V": _u(rng, np.sqrt(1.0 / H), (H, V)),
            "c": _u(rng, bias_scale, (V,)),
        }
    else:
        raise ValueError(f"unknown model kind {cfg.kind!r}")
    p = {k: v.astype(dtype) for k, v in p.items()}
    if cfg.optimizer == "rmsprop":
        for k in list(p):
            p["m" + k] = np.zeros_like(p[k])
    return p


def make_data(cfg: Config, n: int, seed: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` training examples (x, y) of int32 word ids; y is x shifted by one, as in the
    tutorial (a sentence predicts its own next word)."""
    rng = np.random.default_rng(seed)
    shape = (cfg.steps + 1,) if cfg.batch == 1 else (cfg.steps + 1, cfg.batch)
    out = []
    for _ in range(n):
        words = rng.integers(0, cfg.vocab, shape).astype(np.int32)
        out.append((np.ascontiguousarray(words[:-1]), np.ascontiguousarray(words[1:])))
    return out
