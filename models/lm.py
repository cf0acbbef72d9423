"""Recurrent language models (RNN, GRU, LSTM) as symgraph graphs, and the tutorials' presets.

Two graphs share the same parameters:

* the *sentence* graph, written exactly like the tutorials' Theano code: one sentence
  (``T.ivector``), the softmax inside the scan step, ``cost = sum(categorical_crossentropy)``;
* the *batch* graph: time-major minibatches ``x, y [T, B]`` with a mask, padding-neutral
  (the masked step keeps the previous state), the softmax once over all steps after the scan.

With one sentence and a mask of ones both give the same numbers (tested).  The training
objective of the batch graph is the summed cross-entropy divided by the number of sentences, so
a batch of one is the tutorial's per-sentence step; ``objective="token"`` divides by the number
of words instead.  Reported losses are always mean cross-entropy per word.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import symgraph as sg
import symgraph.tensor as T
from models import optim
from models.cells import GATES, Layout, Weights, stack_step

PRESETS: dict[str, dict[str, Any]] = {
    # WildML part 2: RNNTheano(8000, hidden_dim=100, bptt_truncate=4), SGD lr 0.005, no biases,
    # no embedding (U[:, x_t] is the input).
    "tutorial-rnn": dict(
        cell="rnn", vocab_size=8000, hidden_dim=100, emb_dim=None, layers=1, bias=False,
        gate="sigmoid", bptt_truncate=4, optimizer="sgd", learning_rate=0.005,
    ),
    # WildML part 4 (GRUTheano): E [H, V] (the embedding width is the hidden size: train.py's
    # EMBEDDING_DIM=48 is never used), two GRU layers, hard_sigmoid gates, RMSProp lr 0.001.
    "tutorial-gru": dict(
        cell="gru", vocab_size=8000, hidden_dim=128, emb_dim=128, layers=2, bias=True,
        gate="hard_sigmoid", bptt_truncate=-1, optimizer="rmsprop", learning_rate=0.001,
    ),
    # The same interface with LSTM cells.
    "tutorial-lstm": dict(
        cell="lstm", vocab_size=8000, hidden_dim=128, emb_dim=128, layers=2, bias=True,
        gate="hard_sigmoid", bptt_truncate=-1, optimizer="rmsprop", learning_rate=0.001,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class LMConfig:
    """Everything that fixes the model's graphs and parameter shapes."""

    cell: str = "gru"
    vocab_size: int = 8000
    hidden_dim: int = 128
    emb_dim: int | None = 128
    layers: int = 1
    bias: bool = True
    gate: str = "sigmoid"
    bptt_truncate: int = -1  # the tutorial's meaning: each loss term back-propagates <= k steps
    optimizer: str = "rmsprop"
    learning_rate: float = 0.001  # the default; the step function takes lr as an input
    clip_norm: float = 0.0
    objective: str = "sentence"  # "sentence" (tutorial) or "token"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.cell not in GATES:
            raise ValueError(f"cell must be one of {sorted(GATES)}, got {self.cell!r}")
        if self.gate not in ("sigmoid", "hard_sigmoid"):
            raise ValueError(f"gate must be 'sigmoid' or 'hard_sigmoid', got {self.gate!r}")
        if self.objective not in ("sentence", "token"):
            raise ValueError(f"objective must be 'sentence' or 'token', got {self.objective!r}")
        if self.layers < 1 or self.hidden_dim < 1 or self.vocab_size < 2:
            raise ValueError("layers, hidden_dim must be >= 1 and vocab_size >= 2")
        if self.optimizer not in optim.OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {optim.OPTIMIZERS}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> LMConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; presets: {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LMConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def layout(self) -> Layout:
        return Layout(
            self.cell, self.vocab_size, self.hidden_dim, self.emb_dim, self.layers, self.bias
        )

    def optimizer_spec(self) -> optim.OptimizerSpec:
        return optim.OptimizerSpec(name=self.optimizer, clip_norm=self.clip_norm)


def _scan(fn, sequences, outputs_info, non_sequences, bptt_truncate: int):
    """``sg.scan`` with the tutorial's per-term truncation when ``bptt_truncate >= 0``."""
    kwargs = {}
    if bptt_truncate is not None and bptt_truncate >= 0:
        kwargs["bptt_truncate"] = bptt_truncate
    return sg.scan(
        fn, sequences=sequences, outputs_info=outputs_info, non_sequences=non_sequences, **kwargs
    )


class LanguageModel:
    """A recurrent language model with shared parameters, optimizer state and compiled functions.

    Functions are compiled on first use. ``x, y`` are int32 word ids, time-major ``[T, B]`` for
    the batch functions and ``[T]`` for the ``sentence_*`` (tutorial) functions.
    """

    def __init__(self, config: LMConfig, seed: int = 0):
        self.config = config
        self.layout = config.layout
        rng = np.random.default_rng(seed)
        init = self.layout.init_params(rng, config.dtype)
        self.params: dict[str, sg.SharedVariable] = {
            k: sg.shared(v, name=k) for k, v in init.items()
        }
        self.opt_spec = config.optimizer_spec()
        self.opt_state = optim.init_state(self.opt_spec, self.params)
        self._fns: dict[str, sg.Function] = {}

    # -- graphs ----------------------------------------------------------------------------

    def _nonseq(self) -> list[sg.SharedVariable]:
        return list(self.params.values())

    def _weights(self, tensors: Sequence[T.Variable], batched: bool) -> Weights:
        return Weights(self.layout, dict(zip(self.params, tensors)), self.config.gate, batched)

    def sentence_graph(self) -> tuple[T.Variable, T.Variable, T.Variable, T.Variable]:
        """The tutorial graph: ``(x, y, o, cost)``, ``o [T, V]`` the per-step softmax."""
        H, n_states = self.layout.hidden_dim, self.layout.n_states
        x, y = T.ivector("x"), T.ivector("y")

        def forward_prop_step(x_t, *args):
            states, tensors = list(args[:n_states]), args[n_states:]
            w = self._weights(tensors, batched=False)
            new_states, top = stack_step(w, x_t, states)
            o_t = T.nnet.softmax(w.p["V"].dot(top) + w.p.get("c", 0))[0]
            return [o_t, *new_states]

        zeros = T.zeros(H, dtype=self.config.dtype)
        outs, _ = _scan(
            forward_prop_step,
            sequences=x,
            outputs_info=[None] + [dict(initial=zeros) for _ in range(n_states)],
            non_sequences=self._nonseq(),
            bptt_truncate=self.config.bptt_truncate,
        )
        o = outs[0]
        cost = T.sum(T.nnet.categorical_crossentropy(o, y))
        return x, y, o, cost

    def batch_graph(self) -> dict[str, T.Variable]:
        """The minibatch graph: inputs x, y, mask; log_probs [T, B, V]; ce_sum; n_words; states
        (every recurrent state over time, ``[T, H, B]`` each, LSTM: h and c per layer)."""
        H, n_states, dt = self.layout.hidden_dim, self.layout.n_states, self.config.dtype
        x, y = T.imatrix("x"), T.imatrix("y")
        mask = T.tensor(dt, (None, None), name="mask")

        def step(x_t, m_t, *args):
            states, tensors = list(args[:n_states]), args[n_states:]
            new_states, _ = stack_step(self._weights(tensors, batched=True), x_t, states, m_t)
            return new_states

        zeros = T.zeros((H, x.shape[1]), dtype=dt)
        outs, _ = _scan(
            step,
            sequences=[x, mask],
            outputs_info=[dict(initial=zeros) for _ in range(n_states)],
            non_sequences=self._nonseq(),
            bptt_truncate=self.config.bptt_truncate,
        )
        outs = outs if isinstance(outs, list | tuple) else [outs]
        top = outs[n_states - (2 if self.layout.cell == "lstm" else 1)]  # [T, H, B]
        hs = top.dimshuffle(0, 2, 1)  # [T, B, H]
        n_rows = hs.shape[0] * hs.shape[1]
        flat = hs.reshape((n_rows, H))
        logits = flat.dot(self.params["V"].T)
        if "c" in self.params:
            logits = logits + self.params["c"]
        logp = T.nnet.log_softmax(logits)  # for the probabilities a prediction returns
        # the loss as Theano code writes it: the compiler makes it one op with the softmax its
        # gradient reads (one pass of exp over the logits, the gradient written in place)
        nll = T.nnet.categorical_crossentropy(T.nnet.softmax(logits), y.flatten())
        m = mask.flatten()
        ce_sum = T.sum(nll * m)
        n_words = T.sum(m)
        log_probs = logp.reshape((hs.shape[0], hs.shape[1], self.layout.vocab_size))
        return dict(
            x=x, y=y, mask=mask, log_probs=log_probs, ce_sum=ce_sum, n_words=n_words,
            states=list(outs),
        )  # fmt: skip

    def _objective(self, g: dict[str, T.Variable]) -> T.Variable:
        if self.config.objective == "token":
            return g["ce_sum"] / T.maximum(g["n_words"], 1.0)
        return g["ce_sum"] / T.cast(g["x"].shape[1], self.config.dtype)

    # -- compiled functions --------------------------------------------------------------

    def _fn(self, key: str) -> sg.Function:
        if key not in self._fns:
            self._fns[key] = self._compile(key)
        return self._fns[key]

    def _compile(self, key: str) -> sg.Function:
        names = list(self.params)
        params = [self.params[n] for n in names]
        lr = T.tensor(self.config.dtype, (), name="learning_rate")
        if key.startswith("sentence"):
            x, y, o, cost = self.sentence_graph()
            if key == "sentence_predict":
                return sg.function([x], o, name="predict")
            if key == "sentence_loss":
                return sg.function([x, y], cost, name="ce_error")
            grads = T.grad(cost, params)
            if key == "sentence_grads":
                return sg.function([x, y], grads, name="bptt")
            ups = optim.make_updates(self.opt_spec, self.params, grads, self.opt_state, lr)
            return sg.function([x, y, lr], cost, updates=ups, name="sgd_step")
        if key == "step":
            return self._compile_step()
        g = self.batch_graph()
        ins = [g["x"], g["y"], g["mask"]]
        if key == "predict":
            return sg.function([g["x"], g["mask"]], T.exp(g["log_probs"]), name="predict_batch")
        if key == "loss":
            return sg.function(ins, [g["ce_sum"], g["n_words"]], name="loss")
        if key == "grads":
            return sg.function(ins, T.grad(g["ce_sum"], params), name="grads")
        if key == "train":
            grads = T.grad(self._objective(g), params)
            ups = optim.make_updates(self.opt_spec, self.params, grads, self.opt_state, lr)
            return sg.function(ins + [lr], [g["ce_sum"], g["n_words"]], updates=ups, name="train")
        raise KeyError(key)

    def _compile_step(self) -> sg.Function:
        """One step for sampling: ``(x_t [B], *states [H, B]) -> (probs [B, V], *states)``."""
        n_states, dt = self.layout.n_states, self.config.dtype
        x_t = T.ivector("x_t")
        states = [T.tensor(dt, (None, None), name=f"s{k}") for k in range(n_states)]
        w = self._weights(self._nonseq(), batched=True)
        new_states, top = stack_step(w, x_t, states)
        logits = top.T.dot(self.params["V"].T)
        if "c" in self.params:
            logits = logits + self.params["c"]
        return sg.function([x_t, *states], [T.nnet.softmax(logits), *new_states], name="step")

    def compile_all(self, sentence: bool = False) -> None:
        """Compile the training functions now (so timing excludes compilation)."""
        for key in ("sentence_train", "sentence_loss") if sentence else ("train", "loss"):
            self._fn(key)

    # -- batch API ---------------------------------------------------------------------

    def predict(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Next-word probabilities ``[T, B, V]`` for ``x [T, B]``."""
        mask = np.ones(x.shape, self.config.dtype) if mask is None else mask
        return self._fn("predict")(x, mask)

    def batch_loss(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
        """``(summed cross-entropy, number of words)`` of a padded minibatch."""
        ce, n = self._fn("loss")(x, y, mask)
        return float(ce), float(n)

    def gradients(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of the summed cross-entropy of a minibatch, by parameter name."""
        return dict(zip(self.params, self._fn("grads")(x, y, mask)))

    def train_step(
        self, x: np.ndarray, y: np.ndarray, mask: np.ndarray, lr: float | None = None
    ) -> tuple[float, float]:
        """One optimizer step on a minibatch; returns ``(summed cross-entropy, words)``."""
        lr = self.config.learning_rate if lr is None else lr
        ce, n = self._fn("train")(x, y, mask, np.asarray(lr, dtype=self.config.dtype))
        return float(ce), float(n)

    # -- sentence (tutorial) API --------------------------------------------------------

    def sentence_predict(self, x: Sequence[int]) -> np.ndarray:
        return self._fn("sentence_predict")(np.asarray(x, np.int32))

    def sentence_loss(self, x: Sequence[int], y: Sequence[int]) -> float:
        return float(self._fn("sentence_loss")(np.asarray(x, np.int32), np.asarray(y, np.int32)))

    def sentence_gradients(self, x: Sequence[int], y: Sequence[int]) -> dict[str, np.ndarray]:
        grads = self._fn("sentence_grads")(np.asarray(x, np.int32), np.asarray(y, np.int32))
        return dict(zip(self.params, grads))

    def sentence_train_step(self, x: Sequence[int], y: Sequence[int], lr: float | None) -> float:
        lr = self.config.learning_rate if lr is None else lr
        f = self._fn("sentence_train")
        return float(
            f(np.asarray(x, np.int32), np.asarray(y, np.int32), np.asarray(lr, self.config.dtype))
        )

    # -- sampling ----------------------------------------------------------------------

    def initial_states(self, batch: int) -> list[np.ndarray]:
        shape = (self.layout.hidden_dim, batch)
        return [np.zeros(shape, self.config.dtype) for _ in range(self.layout.n_states)]

    def step(self, x_t: np.ndarray, states: list[np.ndarray]) -> tuple[np.ndarray, list]:
        """``(probs [B, V], new_states)`` after reading the words ``x_t [B]``."""
        probs, *new = self._fn("step")(np.asarray(x_t, np.int32), *states)
        return probs, new

    # -- state for checkpoints ---------------------------------------------------------

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Parameters (``param.NAME``) and optimizer state (``opt.KEY``) as host arrays."""
        out = {f"param.{k}": v.get_value() for k, v in self.params.items()}
        out.update({f"opt.{k}": v.get_value() for k, v in self.opt_state.items()})
        return out

    def expected_arrays(self) -> dict[str, tuple[tuple[int, ...], str]]:
        return {k: (v.shape, v.dtype.name) for k, v in self.state_arrays().items()}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        for k, v in self.params.items():
            v.set_value(arrays[f"param.{k}"])
        for k, v in self.opt_state.items():
            v.set_value(arrays[f"opt.{k}"])

    def get_params(self) -> dict[str, np.ndarray]:
        return {k: v.get_value() for k, v in self.params.items()}

    def set_params(self, values: dict[str, np.ndarray]) -> None:
        for k, v in values.items():
            self.params[k].set_value(np.asarray(v, dtype=self.config.dtype))
