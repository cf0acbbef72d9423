"""Every ```python block in README.md and docs/*.md runs.

The blocks of one file run in order in one namespace (later blocks may use names defined by
earlier ones, as a reader would type them into one session). A block preceded by a line
``<!-- no-run -->`` is skipped; that is for code that truly cannot run here (e.g. GPU only).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
NO_RUN = "<!-- no-run -->"

# the documents show what a user sees on a CPU
pytestmark = pytest.mark.cpu_strategy


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """``(line number, source, runnable)`` for each fenced python block of a Markdown text."""
    blocks = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        blocks.append((line, m.group(1), before != NO_RUN))
    return blocks


def test_extractor_finds_blocks_and_opt_outs() -> None:
    text = "a\n```python\nx = 1\n```\n<!-- no-run -->\n```python\ngpu()\n```\n```bash\nls\n```\n"
    assert python_blocks(text) == [(2, "x = 1\n", True), (6, "gpu()\n", False)]


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_code_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import symgraph as sg

    blocks = python_blocks(path.read_text(encoding="utf-8"))
    if not any(run for _, _, run in blocks):
        pytest.skip(f"{path.name} has no runnable python blocks")
    # run where a reader would (the repository root on sys.path for `models`), write into tmp
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    namespace: dict = {"__name__": f"doc_{path.stem}"}
    saved = dict(sg.config._values)
    try:
        for line, source, run in blocks:
            if not run:
                continue
            # pad with newlines so tracebacks give the line number in the Markdown file
            code = compile("\n" * (line) + source, str(path), "exec")
            try:
                exec(code, namespace)
            except Exception as e:  # name the block so the failure is easy to find
                raise AssertionError(
                    f"{os.path.relpath(path, ROOT)}: block at line {line} failed: "
                    f"{type(e).__name__}: {e}"
                ) from e
    finally:
        sg.config._values.clear()
        sg.config._values.update(saved)
