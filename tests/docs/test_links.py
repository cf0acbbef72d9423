"""Relative links and file paths mentioned in the docs point at files that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
# `examples/x.py`, `benchmarks/y.py`, `symgraph/z.py`, `models/w.py` in backticks
PATH = re.compile(r"`((?:examples|benchmarks|symgraph|models|tests)/[\w/.-]+\.py)`")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_and_paths_exist(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    missing = []
    for target in LINK.findall(text):
        if "://" not in target and not (doc.parent / target).exists():
            missing.append(target)
    for path in PATH.findall(text):
        if not (ROOT / path).exists():
            missing.append(path)
    assert not missing, f"{doc.name} refers to missing files: {missing}"
