"""Checkpoints: one ``.npz`` of arrays (parameters, optimizer state) plus JSON metadata.

The metadata (model config, vocabulary, training position, RNG state, loss history) is stored in
the same file as a JSON string, so a checkpoint is one file written atomically: to a temporary
file in the destination folder, flushed to disk, then ``os.replace``-d over the old one. Files
are read with ``allow_pickle=False``: loading a checkpoint never runs code.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "symgraph-lm-checkpoint"
VERSION = 1
_META_KEY = "__meta__"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read (missing, corrupt, truncated, wrong format)."""


class CheckpointMismatchError(CheckpointError):
    """A readable checkpoint that does not fit the requested model."""


def save_checkpoint(
    path: str | os.PathLike, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> Path:
    """Write ``arrays`` and ``meta`` (JSON-serialisable) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for key in arrays:
        if key == _META_KEY or not key or "/" in key:
            raise ValueError(f"invalid array name {key!r} for a checkpoint")
    text = json.dumps({**meta, "format": FORMAT, "version": VERSION}, allow_nan=True)
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload[_META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # a failed or interrupted write leaves the previous checkpoint untouched
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(arrays, meta)`` from a file written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if not zipfile.is_zipfile(path):  # also what a truncated .npz looks like
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint (not a readable .npz)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if _META_KEY not in data.files:
                raise CheckpointError(
                    f"{path}: an .npz file but not a symgraph checkpoint (no metadata entry)"
                )
            arrays = {k: data[k] for k in data.files if k != _META_KEY}
            meta = json.loads(data[_META_KEY].tobytes().decode("utf-8"))
    except CheckpointError:
        raise
    except ValueError as e:
        if "pickle" in str(e):
            raise CheckpointError(
                f"{path}: contains pickled object arrays, which are never loaded "
                "(allow_pickle=False)"
            ) from e
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint (ValueError: {e})") from e
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, UnicodeDecodeError) as e:
        raise CheckpointError(
            f"{path}: corrupt or truncated checkpoint ({type(e).__name__}: {e})"
        ) from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} file")
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {meta.get('version')!r}, this code reads {VERSION}"
        )
    return arrays, meta


def check_arrays(
    path: str | os.PathLike,
    arrays: Mapping[str, np.ndarray],
    expected: Mapping[str, tuple[tuple[int, ...], str]],
) -> None:
    """Raise :class:`CheckpointMismatchError` unless ``arrays`` has exactly the expected
    names, shapes and dtypes (``expected``: name -> (shape, dtype))."""
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing arrays {missing}")
    if extra:
        problems.append(f"unexpected arrays {extra}")
    for name, (shape, dtype) in expected.items():
        if name in arrays:
            a = arrays[name]
            if tuple(a.shape) != tuple(shape) or a.dtype.name != dtype:
                problems.append(
                    f"{name}: checkpoint has {a.dtype.name}{list(a.shape)}, "
                    f"model needs {dtype}{list(shape)}"
                )
    if problems:
        raise CheckpointMismatchError(
            f"{path}: checkpoint does not match the model: " + "; ".join(problems)
        )


# -- language-model checkpoints -------------------------------------------------------------


def save_model(
    path: str | os.PathLike, model: Any, vocab: Any, extra: Mapping[str, Any] | None = None
) -> Path:
    """Save a :class:`models.lm.LanguageModel` with its vocabulary and ``extra`` metadata."""
    meta = {"model": model.config.to_dict(), "vocab": vocab.to_json(), **(extra or {})}
    return save_checkpoint(path, model.state_arrays(), meta)


def config_differences(wanted: Mapping[str, Any], found: Mapping[str, Any]) -> list[str]:
    """``name: checkpoint X, requested Y`` for each model setting that differs."""
    return [
        f"{k}: checkpoint {found.get(k)!r}, requested {v!r}"
        for k, v in wanted.items()
        if found.get(k) != v
    ]


def load_model(path: str | os.PathLike, expect: Any = None, seed: int = 0) -> tuple[Any, Any, dict]:
    """``(model, vocab, meta)`` from a checkpoint; ``expect`` (an ``LMConfig``) must match it."""
    from models.data import Vocabulary
    from models.lm import LanguageModel, LMConfig

    arrays, meta = load_checkpoint(path)
    if "model" not in meta or "vocab" not in meta:
        raise CheckpointError(f"{path}: checkpoint lacks the model config or the vocabulary")
    try:
        config = LMConfig.from_dict(meta["model"])
        vocab = Vocabulary.from_json(meta["vocab"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid model metadata ({e})") from e
    if expect is not None:
        diffs = config_differences(expect.to_dict(), config.to_dict())
        if diffs:
            raise CheckpointMismatchError(
                f"{path}: checkpoint does not match the requested model: " + "; ".join(diffs)
            )
    if len(vocab) != config.vocab_size:
        raise CheckpointError(
            f"{path}: vocabulary has {len(vocab)} words, model config says {config.vocab_size}"
        )
    model = LanguageModel(config, seed=seed)
    check_arrays(path, arrays, model.expected_arrays())
    model.load_state_arrays(arrays)
    return model, vocab, meta
