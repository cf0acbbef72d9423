"""The architecture rules, checked by parsing imports: graph.py imports no ops or backends; ops
never import cupy or backends; only backends/cupy.py imports cupy; models/ and examples/ use only
symgraph's public API (``symgraph`` and ``symgraph.tensor``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = {"symgraph", "symgraph.tensor", "symgraph.tensor.nnet", "symgraph.testing"}


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    names.extend(f"{mod}.{a.name}" for a in node.names)
                else:
                    names.append(mod)
            else:
                names.append(node.module or "")
    return names


def py_files(*parts: str) -> list[Path]:
    return sorted((ROOT.joinpath(*parts)).rglob("*.py"))


def test_only_the_cupy_backend_imports_cupy():
    offenders = [
        str(p.relative_to(ROOT))
        for p in py_files("symgraph")
        if p.name != "cupy.py" and any(m.split(".")[0] in ("cupy", "cupyx") for m in imports_of(p))
    ]
    assert offenders == []


def test_graph_imports_no_ops_or_backends():
    mods = imports_of(ROOT / "symgraph" / "graph.py")
    assert not [m for m in mods if m.startswith(("symgraph.ops", "symgraph.backends"))], mods


def test_ops_never_import_backends():
    offenders = {
        str(p.relative_to(ROOT)): m
        for p in py_files("symgraph", "ops")
        for m in imports_of(p)
        if m.startswith("symgraph.backends")
    }
    assert offenders == {}


@pytest.mark.parametrize("folder", ["models", "examples"])
def test_models_and_examples_use_only_the_public_api(folder):
    offenders = {}
    for p in py_files(folder):
        for m in imports_of(p):
            if m.startswith("symgraph") and m not in PUBLIC:
                offenders[str(p.relative_to(ROOT))] = m
    assert offenders == {}
