#!/usr/bin/env python
"""Sample sentences from a language-model checkpoint written by ``train_lm.py``.

    python examples/sample_lm.py runs/lm/checkpoint.npz -n 20 --temperature 0.8

The tutorial's rules: start at SENTENCE_START, never emit UNKNOWN_TOKEN (it is drawn again),
drop sentences longer than ``--max-length`` tokens or shorter than ``--min-length``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import models  # noqa: F401
except ImportError:  # running from a source checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

import symgraph as sg
from models.checkpoint import CheckpointError, load_model
from models.sampling import generate_sentences


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Sample sentences from a checkpoint.")
    p.add_argument("checkpoint", nargs="?", default="runs/lm/checkpoint.npz")
    p.add_argument("-n", "--num", type=int, default=10, help="number of sentences")
    p.add_argument("--temperature", type=float, default=1.0, help="<1 sharper, >1 flatter")
    p.add_argument("--min-length", type=int, default=5, help="tokens, markers included")
    p.add_argument("--max-length", type=int, default=100, help="tokens, markers included")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    args = p.parse_args(argv)
    if args.temperature <= 0:
        p.error("--temperature must be > 0")
    if args.device is not None:  # else SYMGRAPH_FLAGS' device, or auto
        sg.config.device = args.device
    try:
        model, vocab, meta = load_model(args.checkpoint)
    except (CheckpointError, sg.SymgraphError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    step = meta.get("train", {}).get("step", "?")
    c = model.config
    print(f"# {c.cell} x{c.layers}, hidden {c.hidden_dim}, vocabulary {c.vocab_size}, step {step}")
    sentences = generate_sentences(
        model, vocab, args.num, np.random.default_rng(args.seed), args.temperature,
        min_length=args.min_length, max_length=args.max_length,
    )  # fmt: skip
    for words in sentences:
        print(" ".join(words))
    if len(sentences) < args.num:
        print(f"# only {len(sentences)} sentences met the length rules", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
