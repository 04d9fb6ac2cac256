"""The public API is ``reconciler``'s ``__all__``: every name in it imports, and the guides and
the example plugin import only those names, only from ``reconciler``."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import reconciler

ROOT = Path(__file__).resolve().parents[2]
GUIDES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
EXAMPLES = sorted((ROOT / "examples").rglob("*.py"))
FENCE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def test_every_public_name_imports() -> None:
    missing = []
    for name in reconciler.__all__:
        try:
            exec(f"from reconciler import {name}", {})
        except ImportError:
            missing.append(name)
    assert missing == []
    assert len(set(reconciler.__all__)) == len(reconciler.__all__)


@pytest.mark.parametrize(
    "name",
    [
        "WorkflowBuilder",
        "run_workflow",
        "run_inline_test",
        "Duration",
        "RetryPolicy",
        "Plugin",
        "ActionContext",
        "to_mermaid",
        "to_dot",
        "load_tree",
    ],
)
def test_what_users_import_is_public(name: str) -> None:
    assert name in reconciler.__all__


def _imports(source: str) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in ``source``: ``import x`` gives (x, [])."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            found.append((node.module or "", [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return found


def _code_blocks(path: Path) -> list[str]:
    blocks = [m.group(1) for m in FENCE.finditer(path.read_text())]
    return [b for b in blocks if "import" in b]


def _refusals(source: str) -> list[str]:
    refused = []
    for module, names in _imports(source):
        if module.startswith("reconciler."):
            refused.append(f"import from {module}")
        elif module == "reconciler":
            refused += [
                f"{n} is not in reconciler.__all__" for n in names if n not in reconciler.__all__
            ]
    return refused


@pytest.mark.parametrize("path", GUIDES, ids=lambda p: p.name)
def test_guides_import_only_public_names(path: Path) -> None:
    refused = [r for block in _code_blocks(path) for r in _refusals(block)]
    assert refused == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_import_only_public_names(path: Path) -> None:
    assert _refusals(path.read_text()) == []


def test_the_guides_have_code_to_check() -> None:
    assert any(_code_blocks(p) for p in GUIDES)


def test_every_public_name_has_a_home_and_nothing_else_does() -> None:
    """``reconciler`` imports its public names on first use, from the module its map names."""
    homes = reconciler._HOMES
    assert sorted(homes) == sorted(reconciler.__all__)
    for name, home in homes.items():
        assert getattr(importlib.import_module(home), name) is getattr(reconciler, name)
