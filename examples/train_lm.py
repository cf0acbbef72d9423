#!/usr/bin/env python
"""Train a recurrent language model (RNN, GRU, LSTM) on real text with symgraph.

With no arguments: the README's main job, a GRU on a slice of the chitchat corpus that runs in a
few minutes on a laptop CPU, then prints ten sampled sentences.

    python examples/train_lm.py                                  # the main job
    python examples/train_lm.py --preset tutorial-gru --max-comments 20000 --epochs 2
    python examples/train_lm.py --model lstm --data comments.csv --batch-size 32
    python examples/train_lm.py --resume                         # continue after Ctrl-C

Ctrl-C stops after the current step and writes ``OUT/checkpoint.npz``; the same command with
``--resume`` continues exactly where it stopped (same data order, step, learning rate, optimizer
state and RNG).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path


def _blas_threads(argv: list[str]) -> None:
    """Apply ``--threads`` before NumPy loads its BLAS (it reads the setting only then).

    One thread is the default: the recurrent step multiplies small matrices, where BLAS
    threads cost more in synchronisation than they save (2-4x slower on a busy 2-core CPU).
    """
    n = "1"
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            n = argv[i + 1]
        elif a.startswith("--threads="):
            n = a.split("=", 1)[1]
    if n != "0":
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, n)


if __name__ == "__main__":
    _blas_threads(sys.argv[1:])

try:
    import models  # noqa: F401
except ImportError:  # running from a source checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import symgraph as sg  # noqa: E402
from models.checkpoint import CheckpointError  # noqa: E402
from models.data import load_corpus  # noqa: E402
from models.lm import PRESETS, LanguageModel, LMConfig  # noqa: E402
from models.sampling import generate_sentences  # noqa: E402
from models.training import TrainConfig, Trainer, plot_history, unigram_cross_entropy  # noqa: E402

#: the main job (no arguments): sized to finish in well under 10 minutes on a 2-core CPU
MAIN_JOB = dict(
    model="gru", data="chitchat", max_comments=30000, max_sentence_len=30, vocab_size=3000,
    hidden=128, emb=64, layers=1, gate="sigmoid", batch_size=32, epochs=4, optimizer="adam",
    lr=0.003, clip_norm=5.0, bptt_truncate=-1, time_budget=420.0, eval_every=0,
    halve_lr_on_rise=True,
)  # fmt: skip
# preset keys (LMConfig names) -> command-line names
_PRESET_ARGS = dict(
    cell="model", vocab_size="vocab_size", hidden_dim="hidden", emb_dim="emb", layers="layers",
    bias="bias", gate="gate", bptt_truncate="bptt_truncate", optimizer="optimizer",
    learning_rate="lr",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = p.add_argument
    a("--model", choices=["rnn", "gru", "lstm"], help="recurrent cell (default gru)")
    a("--preset", choices=sorted(PRESETS), help="the tutorials' configurations")
    a("--data", help="'chitchat' (default), a .csv with a 'body' column, or a text file")
    a("--max-comments", type=int, help="read at most this many comments/lines")
    a("--max-sentence-len", type=int, help="drop longer training sentences (0: keep all)")
    a("--vocab-size", type=int)
    a("--hidden", type=int, help="hidden units per layer")
    a("--emb", type=int, help="embedding width (0: no embedding, the tutorial RNN's U[:, x_t])")
    a("--layers", type=int)
    a("--gate", choices=["sigmoid", "hard_sigmoid"])
    a("--bias", type=int, choices=[0, 1], help="use biases (default 1)")
    a("--bptt-truncate", type=int, help="per-term BPTT truncation as in the tutorial (-1: full)")
    a("--batch-size", type=int)
    a("--epochs", type=int)
    a("--lr", type=float, help="learning rate")
    a("--optimizer", choices=["sgd", "rmsprop", "adam"])
    a("--clip-norm", type=float, help="clip the global gradient norm (0: off)")
    a(
        "--halve-lr-on-rise",
        action=argparse.BooleanOptionalAction,
        help="the tutorial's rule: halve the learning rate when the validation loss rises",
    )
    a("--eval-every", type=int, help="validate every N steps (0: once per epoch)")
    a("--checkpoint-every", type=int, default=0, help="write a checkpoint every N steps")
    a("--time-budget", type=float, help="stop training after this many seconds (0: no limit)")
    a("--seed", type=int, default=0)
    a("--device", choices=["auto", "cpu", "cuda"], default=None,
      help="default: SYMGRAPH_FLAGS' device, else auto (the GPU when one answers)")  # fmt: skip
    a("--dtype", choices=["float32", "float64"], default="float32")
    a("--out", default="runs/lm", help="output folder (checkpoint, curves.png)")
    a("--resume", nargs="?", const="", default=None, metavar="CKPT",
      help="continue from OUT/checkpoint.npz (or the given file)")  # fmt: skip
    a("--samples", type=int, default=10, help="sentences to sample at the end")
    a("--temperature", type=float, default=1.0)
    a("--no-progress", action="store_true", help="no progress bar")
    a("--threads", type=int, default=1, help="BLAS threads (0: the library's default)")
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Explicit arguments win over the preset, which wins over the main job's defaults."""
    merged = dict(MAIN_JOB)
    if args.preset:
        merged.update(bias=1, max_sentence_len=0, time_budget=0, batch_size=1, clip_norm=0.0,
                      halve_lr_on_rise=False)  # fmt: skip
        merged.update({_PRESET_ARGS[k]: v for k, v in PRESETS[args.preset].items()})
        merged["emb"] = merged["emb"] or 0
    merged.setdefault("bias", 1)
    for k, v in vars(args).items():
        if v is not None or k not in merged:
            merged[k] = v
    return argparse.Namespace(**merged)


def model_config(a: argparse.Namespace, vocab_size: int | None = None) -> LMConfig:
    """The model for the arguments; ``vocab_size``: the built vocabulary's real size (a small
    corpus can have fewer distinct words than ``--vocab-size``)."""
    return LMConfig(
        cell=a.model, vocab_size=vocab_size or a.vocab_size, hidden_dim=a.hidden,
        emb_dim=a.emb or None, layers=a.layers, bias=bool(a.bias), gate=a.gate,
        bptt_truncate=a.bptt_truncate, optimizer=a.optimizer, learning_rate=a.lr,
        clip_norm=a.clip_norm, dtype=a.dtype,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = resolve(build_parser().parse_args(argv))
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.device is not None:
        sg.config.device = args.device
    out = Path(args.out)
    t0 = time.perf_counter()
    corpus = load_corpus(
        args.data, vocab_size=args.vocab_size, max_comments=args.max_comments, seed=args.seed
    )
    if args.max_sentence_len:
        keep = [i for i, x in enumerate(corpus.X_train) if len(x) <= args.max_sentence_len]
        corpus.X_train = [corpus.X_train[i] for i in keep]
        corpus.Y_train = [corpus.Y_train[i] for i in keep]
    st = corpus.stats
    n_words = sum(len(y) for y in corpus.Y_train)
    print(
        f"data: {args.data}: {st['comments_used']} comments, {len(corpus.X_train)} training / "
        f"{len(corpus.X_valid)} validation sentences, {n_words} training tokens, vocabulary "
        f"{len(corpus.vocab)} ({100 * st['train_coverage']:.1f}% coverage), "
        f"{time.perf_counter() - t0:.1f} s"
    )
    cfg = model_config(args, vocab_size=len(corpus.vocab))
    tcfg = TrainConfig(
        batch_size=args.batch_size, epochs=args.epochs, lr=args.lr,
        halve_lr_on_rise=args.halve_lr_on_rise, checkpoint_every=args.checkpoint_every,
        eval_every=args.eval_every, seed=args.seed, time_budget=args.time_budget or None,
    )  # fmt: skip
    data_args = dict(data=args.data, max_comments=args.max_comments, vocab_size=args.vocab_size)
    try:
        if args.resume is not None:
            path = Path(args.resume) if args.resume else out / "checkpoint.npz"
            trainer = Trainer.resume(path, corpus, tcfg, expect=cfg, out_dir=out,
                                     data_args=data_args)  # fmt: skip
            s = trainer.state
            print(f"resumed {path}: epoch {s.epoch + 1}, batch {s.batch_index}, step {s.step}")
        else:
            model = LanguageModel(cfg, seed=args.seed)
            trainer = Trainer(model, corpus, tcfg, out_dir=out, data_args=data_args)
    except (CheckpointError, sg.SymgraphError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    model = trainer.model
    print(
        f"model: {cfg.cell} x{cfg.layers}, hidden {cfg.hidden_dim}, embedding {cfg.emb_dim}, "
        f"vocabulary {cfg.vocab_size}, {cfg.optimizer} lr {trainer.state.lr:g}, batch "
        f"{tcfg.batch_size}, {sum(v.get_value().size for v in model.params.values())} parameters"
    )
    t1 = time.perf_counter()
    model.compile_all(sentence=trainer.sentence_mode)
    if trainer._valid_batches:
        model.compile_all()
    print(f"compiled in {time.perf_counter() - t1:.1f} s")
    baseline = unigram_cross_entropy(corpus.Y_train, corpus.Y_valid, len(corpus.vocab))
    words0, t2 = trainer.state.words, time.perf_counter()
    status = trainer.run(progress=not args.no_progress)
    train_s = time.perf_counter() - t2
    s = trainer.state
    vals = [v for _, _, v in s.valid_curve]
    if vals and status == "time_budget" and s.valid_curve[-1][0] != s.step:
        vals.append(trainer.validation_loss())  # where the budget stopped it, mid-epoch
    if vals:
        print(f"initial validation loss : {vals[0]:.4f}  (ln V = {np.log(cfg.vocab_size):.4f})")
        print(f"unigram baseline        : {baseline:.4f}")
        print(f"final validation loss   : {vals[-1]:.4f}  (perplexity {np.exp(vals[-1]):.1f})")
    rate = (s.words - words0) / max(train_s, 1e-9)
    print(f"{status}: {s.step} steps, epoch {s.epoch + (s.batch_index > 0)}, "
          f"{rate:.0f} tokens/s, total {time.perf_counter() - t0:.1f} s")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    plot = plot_history(s, out / "curves.png", title=f"{cfg.cell} on {args.data}")
    print(f"checkpoint: {trainer.checkpoint_path}; curves: {plot}")
    if status == "interrupted":
        return 130
    if args.samples:
        print(f"\n{args.samples} sampled sentences (temperature {args.temperature}):")
        for words in generate_sentences(
            model, corpus.vocab, args.samples, trainer.rng, args.temperature
        ):
            print("  " + " ".join(words))
    return 0


if __name__ == "__main__":
    sys.exit(main())
