"""The training loop: minibatches, validation, learning-rate halving, checkpoints, resume.

A run is a deterministic function of the model seed, the data and the training seed: epoch ``e``
visits ``bucket_batches(..., seed=seed * 1000 + e)``, so resuming only needs the position
``(epoch, batch index)``, the step, the learning rate, the optimizer state and the RNG state, all
of which a checkpoint holds. An interrupted run resumed from its checkpoint therefore ends with
exactly the parameters of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.checkpoint import CheckpointMismatchError, load_model, save_model
from models.data import Corpus, bucket_batches
from models.lm import LanguageModel


@dataclass
class TrainConfig:
    batch_size: int = 16
    epochs: int = 1
    lr: float | None = None  # None: the model config's learning rate
    halve_lr_on_rise: bool = False
    checkpoint_every: int = 0  # steps; 0 = only at the end (and on interrupt)
    eval_every: int = 0  # steps between validations; 0 = once per epoch
    seed: int = 0
    time_budget: float | None = None  # seconds of training in this invocation
    eval_batch_size: int = 64
    log_every: int = 10  # steps per point of the training-loss curve
    sentence_graph: bool | None = None  # None: the tutorial graph when batch_size == 1


@dataclass
class TrainState:
    epoch: int = 0
    batch_index: int = 0
    step: int = 0
    lr: float = 0.0
    words: float = 0.0
    seconds: float = 0.0
    acc_ce: float = 0.0  # since the last training-curve point
    acc_words: float = 0.0
    train_curve: list = field(default_factory=list)  # [step, mean CE per word]
    valid_curve: list = field(default_factory=list)  # [step, epoch, mean CE per word]
    lr_changes: list = field(default_factory=list)  # [step, new lr]
    rng: dict = field(default_factory=dict)


def unigram_cross_entropy(Y_train, Y_valid, vocab_size: int) -> float:
    """Cross-entropy per word on ``Y_valid`` of add-one-smoothed unigram frequencies of
    ``Y_train``: the loss a model that ignores context would reach."""
    counts = np.ones(vocab_size)
    for y in Y_train:
        np.add.at(counts, y, 1.0)
    logp = np.log(counts / counts.sum())
    n = sum(len(y) for y in Y_valid)
    return float(-sum(logp[y].sum() for y in Y_valid) / max(n, 1))


class Trainer:
    """Trains ``model`` on ``corpus``; ``out_dir`` receives ``checkpoint.npz``."""

    def __init__(
        self,
        model: LanguageModel,
        corpus: Corpus,
        config: TrainConfig,
        out_dir: str | Path | None = None,
        log: Callable[[str], None] = print,
        data_args: dict | None = None,
    ):
        self.model, self.corpus, self.config = model, corpus, config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.log = log
        self.data_args = data_args or {}
        self.state = TrainState(
            lr=config.lr if config.lr is not None else model.config.learning_rate
        )
        self.rng = np.random.default_rng(config.seed)
        self.on_step: Callable[[Trainer], None] | None = None  # hook (tests, progress)
        self._stop: str | None = None
        self._bar = None
        self._valid_batches = bucket_batches(
            corpus.X_valid, corpus.Y_valid, config.eval_batch_size, shuffle=False
        ) if corpus.X_valid else []  # fmt: skip
        use_sentence = config.sentence_graph
        self.sentence_mode = config.batch_size == 1 if use_sentence is None else use_sentence

    # -- checkpoints -------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / "checkpoint.npz"

    def save(self, path: str | Path | None = None) -> Path | None:
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            return None
        self.state.rng = self.rng.bit_generator.state
        extra = {
            "train": dataclasses.asdict(self.state),
            "train_config": dataclasses.asdict(self.config),
            "data": {**self.data_args, "train_sentences": len(self.corpus.X_train)},
        }
        return save_model(path, self.model, self.corpus.vocab, extra)

    @classmethod
    def resume(
        cls, path: str | Path, corpus: Corpus, config: TrainConfig, expect=None, **kwargs: Any
    ) -> Trainer:
        """A trainer that continues the run saved at ``path`` (same data and settings)."""
        model, vocab, meta = load_model(path, expect=expect)
        if vocab != corpus.vocab:
            raise CheckpointMismatchError(
                f"{path}: the checkpoint's vocabulary differs from the one built from the data "
                "(pass the same --data/--vocab-size/--max-comments as the original run)"
            )
        n_train = meta.get("data", {}).get("train_sentences")
        if n_train is not None and n_train != len(corpus.X_train):
            raise CheckpointMismatchError(
                f"{path}: checkpoint was trained on {n_train} sentences, the data now has "
                f"{len(corpus.X_train)}"
            )
        old = meta.get("train_config", {})
        for key in ("batch_size", "seed"):
            if key in old and old[key] != getattr(config, key):
                raise CheckpointMismatchError(
                    f"{path}: checkpoint used {key}={old[key]!r}, requested "
                    f"{getattr(config, key)!r}; resuming needs the same data order"
                )
        trainer = cls(model, corpus, config, **kwargs)
        trainer.state = TrainState(**meta["train"])
        trainer.rng.bit_generator.state = trainer.state.rng
        return trainer

    # -- evaluation --------------------------------------------------------------------

    def validation_loss(self) -> float:
        ce = n = 0.0
        for x, y, m in self._valid_batches:
            c, w = self.model.batch_loss(x, y, m)
            ce, n = ce + c, n + w
        return ce / n if n else float("nan")

    def _validate(self) -> float:
        st = self.state
        val = self.validation_loss()
        prev = st.valid_curve[-1][2] if st.valid_curve else None
        st.valid_curve.append([st.step, st.epoch, val])
        msg = f"step {st.step} epoch {st.epoch + 1}: validation loss {val:.4f} (ppl {_ppl(val)})"
        if self.config.halve_lr_on_rise and prev is not None and val > prev:
            st.lr *= 0.5
            st.lr_changes.append([st.step, st.lr])
            msg += f"; loss rose, learning rate halved to {st.lr:g}"
        if self._bar is not None and self.log is print:
            self._bar.write(msg)  # keeps the progress bar intact
        else:
            self.log(msg)
        return val

    # -- the loop ----------------------------------------------------------------------

    def epoch_batches(self, epoch: int):
        c = self.corpus
        return bucket_batches(
            c.X_train, c.Y_train, self.config.batch_size, seed=self.config.seed * 1000 + epoch
        )

    def _train_batch(self, x, y, m) -> tuple[float, float]:
        if self.sentence_mode and x.shape[1] == 1:
            n = int(m[:, 0].sum())
            return self.model.sentence_train_step(x[:n, 0], y[:n, 0], self.state.lr), float(n)
        return self.model.train_step(x, y, m, self.state.lr)

    def run(self, progress: bool = False) -> str:
        """Train until the configured epochs are done, the time budget is spent, or Ctrl-C.

        Returns ``"finished"``, ``"time_budget"`` or ``"interrupted"``; a checkpoint is written
        in every case (when there is an output folder).
        """
        self._stop = None
        old_handler = self._install_sigint()
        t_start = time.perf_counter()
        seconds0 = self.state.seconds
        try:
            if not self.state.valid_curve and self._valid_batches:
                self._validate()
            status = self._loop(progress, t_start, seconds0)
        except KeyboardInterrupt:
            status = "interrupted"
        finally:
            self.state.seconds = seconds0 + time.perf_counter() - t_start
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
        path = self.save()
        if status != "finished" and path is not None:
            self.log(f"{status}: checkpoint written to {path} (continue with --resume)")
        return status

    def _loop(self, progress: bool, t_start: float, seconds0: float) -> str:
        cfg, st = self.config, self.state
        while st.epoch < cfg.epochs:
            batches = self.epoch_batches(st.epoch)
            bar = self._bar = _progress(
                progress, len(batches), st.batch_index, st.epoch, cfg.epochs
            )
            t_bar, w_bar = time.perf_counter(), 0.0
            try:
                while st.batch_index < len(batches):
                    x, y, m = batches[st.batch_index]
                    ce, n = self._train_batch(x, y, m)
                    if not math.isfinite(ce):
                        raise FloatingPointError(
                            f"training loss became {ce} at step {st.step} (lower --lr, or use "
                            "--clip-norm)"
                        )
                    st.batch_index += 1
                    st.step += 1
                    st.words += n
                    st.acc_ce, st.acc_words = st.acc_ce + ce, st.acc_words + n
                    w_bar += n
                    if st.step % cfg.log_every == 0:
                        st.train_curve.append([st.step, st.acc_ce / max(st.acc_words, 1.0)])
                        st.acc_ce = st.acc_words = 0.0
                    if bar is not None:
                        bar.update(1)
                        rate = w_bar / max(time.perf_counter() - t_bar, 1e-9)
                        bar.set_postfix(loss=f"{ce / max(n, 1):.3f}", tok_s=f"{rate:.0f}")
                    if cfg.eval_every and st.step % cfg.eval_every == 0:
                        self._validate()
                    if cfg.checkpoint_every and st.step % cfg.checkpoint_every == 0:
                        self.save()
                    if self.on_step is not None:
                        self.on_step(self)
                    if cfg.time_budget and time.perf_counter() - t_start >= cfg.time_budget:
                        self._stop = self._stop or "time_budget"
                    if self._stop:
                        return self._stop
            finally:
                if bar is not None:
                    bar.close()
                self._bar = None
            if not cfg.eval_every and self._valid_batches:
                self._validate()
            st.epoch += 1
            st.batch_index = 0
        return "finished"

    def _install_sigint(self):
        # Ctrl-C asks the loop to stop after the current step (so no update is half-applied);
        # a second Ctrl-C interrupts at once.
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            if self._stop == "interrupted":
                raise KeyboardInterrupt
            self._stop = "interrupted"

        return signal.signal(signal.SIGINT, handler)


def _ppl(loss: float) -> str:
    return f"{math.exp(loss):.1f}" if loss < 700 else "inf"


def _progress(enabled: bool, total: int, initial: int, epoch: int, epochs: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
        dynamic_ncols=True, leave=False,
    )  # fmt: skip


def plot_history(state: TrainState, path: str | Path, title: str = "") -> Path:
    """Training and validation loss against steps, as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    if state.train_curve:
        s, v = zip(*state.train_curve)
        ax.plot(s, v, label="training (mean over log interval)", lw=1)
    if state.valid_curve:
        s, _, v = zip(*state.valid_curve)
        ax.plot(s, v, "o-", label="validation", lw=2)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy per word (nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
