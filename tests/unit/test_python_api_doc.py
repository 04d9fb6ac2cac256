"""The examples of ``docs/python-api.md`` run as written: the builder example builds a workflow
and its ``to_yaml()`` line writes a file that loads back to the same workflow."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from reconciler import Workflow, approval, load_tree

DOC = Path(__file__).resolve().parents[2] / "docs" / "python-api.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_builder_example_and_its_to_yaml_line_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    imports_and_builder, write_line = python_blocks()[:2]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "workflows").mkdir()
    namespace: dict[str, Any] = {}
    exec(imports_and_builder, namespace)  # the documentation's own example
    exec("import pathlib\n" + write_line, namespace)
    wf = namespace["wf"]
    assert isinstance(wf, Workflow) and wf.name == "nightly-report"
    loaded = load_tree(tmp_path / "workflows")
    assert loaded.problems == []
    assert loaded.workflows["nightly-report"].workflow == wf


def test_the_approval_helper_gives_the_yaml_shape() -> None:
    assert approval("go", message="Go?", approvers=["bob"], separate_requester=True) == {
        "to": "go",
        "approval": {"message": "Go?", "approvers": ["bob"], "separateRequester": True},
    }
    assert approval("go") == {"to": "go", "approval": {}}
