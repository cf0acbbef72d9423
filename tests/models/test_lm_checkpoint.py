"""Checkpoints: round trip, atomic replacement, mismatch and corruption errors."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from models.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    load_checkpoint,
    load_model,
    save_checkpoint,
    save_model,
)
from models.data import SENTENCE_END, SENTENCE_START, Vocabulary
from models.lm import LanguageModel, LMConfig


def tiny(cell="gru", **kw) -> LMConfig:
    return LMConfig(**{**dict(cell=cell, vocab_size=12, hidden_dim=4, emb_dim=3), **kw})


@pytest.fixture
def vocab():
    return Vocabulary([SENTENCE_START, SENTENCE_END] + [f"w{i}" for i in range(9)])


def test_arrays_and_metadata_round_trip(tmp_path):
    arrays = {"param.E": np.arange(6, dtype=np.float32).reshape(2, 3), "opt.t": np.float32(3)}
    meta = {"step": 7, "history": [[1, 2.5]], "rng": {"state": 2**100}}
    path = save_checkpoint(tmp_path / "c.npz", arrays, meta)
    got, m = load_checkpoint(path)
    assert m["step"] == 7 and m["history"] == [[1, 2.5]] and m["rng"]["state"] == 2**100
    np.testing.assert_array_equal(got["param.E"], arrays["param.E"])
    assert got["opt.t"].dtype == np.float32 and got["opt.t"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary file left


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adam"])
def test_model_round_trip_keeps_parameters_and_optimizer_state(tmp_path, vocab, optimizer):
    m = LanguageModel(tiny(optimizer=optimizer), seed=3)
    for v in m.opt_state.values():  # make the state non-trivial
        v.set_value(np.full_like(v.get_value(), 0.25))
    save_model(tmp_path / "m.npz", m, vocab, {"train": {"step": 5}})
    m2, vocab2, meta = load_model(tmp_path / "m.npz", expect=m.config)
    assert vocab2 == vocab and meta["train"]["step"] == 5 and m2.config == m.config
    for k, v in m.state_arrays().items():
        np.testing.assert_array_equal(m2.state_arrays()[k], v, err_msg=k)


def test_save_replaces_the_previous_file_atomically(tmp_path, vocab, monkeypatch):
    m = LanguageModel(tiny(), seed=0)
    path = save_model(tmp_path / "m.npz", m, vocab, {"train": {"step": 1}})
    before = path.read_bytes()

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        save_model(path, m, vocab, {"train": {"step": 2}})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_a_different_model_is_a_clear_error(tmp_path, vocab):
    save_model(tmp_path / "m.npz", LanguageModel(tiny("gru")), vocab)
    with pytest.raises(CheckpointMismatchError, match=r"cell: checkpoint 'gru', requested 'lstm'"):
        load_model(tmp_path / "m.npz", expect=tiny("lstm"))
    with pytest.raises(CheckpointMismatchError, match="hidden_dim"):
        load_model(tmp_path / "m.npz", expect=tiny("gru", hidden_dim=5))


def test_arrays_that_do_not_fit_the_config_are_a_clear_error(tmp_path, vocab):
    m = LanguageModel(tiny(), seed=0)
    arrays = m.state_arrays()
    arrays["param.W"] = arrays["param.W"][:, :2]
    del arrays["param.c"]
    meta = {"model": m.config.to_dict(), "vocab": vocab.to_json()}
    save_checkpoint(tmp_path / "bad.npz", arrays, meta)
    with pytest.raises(CheckpointMismatchError) as e:
        load_model(tmp_path / "bad.npz")
    assert "missing arrays ['param.c']" in str(e.value) and "param.W" in str(e.value)


def test_corrupt_truncated_and_foreign_files(tmp_path, vocab):
    path = save_model(tmp_path / "m.npz", LanguageModel(tiny()), vocab)
    data = path.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_model(tmp_path / "trunc.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_model(tmp_path / "junk.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a symgraph checkpoint"):
        load_model(tmp_path / "plain.npz")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing.npz")


def test_pickled_arrays_are_refused(tmp_path):
    # an object array would need pickle to load; allow_pickle=False turns it into an error
    meta = json.dumps({"format": "symgraph-lm-checkpoint", "version": 1}).encode()
    with zipfile.ZipFile(tmp_path / "p.npz", "w") as z:
        with z.open("__meta__.npy", "w") as f:
            np.save(f, np.frombuffer(meta, np.uint8))
        with z.open("param.E.npy", "w") as f:
            np.save(f, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match="pickled object arrays"):
        load_checkpoint(tmp_path / "p.npz")


def test_wrong_format_version(tmp_path):
    save_checkpoint(tmp_path / "v.npz", {}, {"x": 1})
    arrays, meta = load_checkpoint(tmp_path / "v.npz")
    assert meta["x"] == 1
    meta_bad = {"version": 99}
    with zipfile.ZipFile(tmp_path / "v2.npz", "w") as z:
        with z.open("__meta__.npy", "w") as f:
            text = json.dumps({"format": "symgraph-lm-checkpoint", **meta_bad}).encode()
            np.save(f, np.frombuffer(text, np.uint8))
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(tmp_path / "v2.npz")
