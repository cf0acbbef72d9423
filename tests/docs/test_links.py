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


ANCHOR_LINK = re.compile(r"\]\(([\w./-]*)#([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$", re.MULTILINE)
FENCED = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown text's headings (code blocks are not headings)."""
    anchors, seen = set(), {}
    for title in HEADING.findall(FENCED.sub("", text)):
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def test_heading_anchors_follow_github() -> None:
    text = "# A `b`: c's d\n```python\n# not a heading\n```\n## Same\n## Same\n"
    assert heading_anchors(text) == {"a-b-cs-d", "same", "same-1"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_anchor_links_point_at_headings(doc: Path) -> None:
    missing = []
    for target, anchor in ANCHOR_LINK.findall(doc.read_text(encoding="utf-8")):
        if "://" in target:
            continue
        page = doc.parent / target if target else doc
        if page.suffix == ".md" and page.exists():
            if anchor not in heading_anchors(page.read_text(encoding="utf-8")):
                missing.append(f"{target}#{anchor}")
    assert not missing, f"{doc.name} links to anchors that no heading has: {missing}"
