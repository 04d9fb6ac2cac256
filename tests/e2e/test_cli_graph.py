"""``reconciler graph`` as a user runs it: a real subprocess over real workflow files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pydot
import pytest

from reconciler.config.loader import load_tree
from reconciler.engine.graph import to_dot

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart"
RECONCILER = Path(sys.executable).parent / "reconciler"

DEPLOY = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {name: deploy}
spec:
  start: build
  states:
    build:
      action: {plugin: shell.run, with: {argv: [make]}}
      transitions:
        - {to: done, on: success}
        - {to: failed, on: [CommandFailed, Timeout]}
    done: {end: success}
    failed: {end: failure}
"""

REPORT = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {name: report}
spec:
  start: wait
  states:
    wait:
      transitions:
        - {to: done, when: "inputs.ready == true"}
        - {to: done, after: 90s}
    done: {end: success}
"""

BROKEN = """\
apiVersion: reconciler/v1
kind: Workflow
metadata: {name: broken}
spec:
  start: a
  states:
    a: {do: [{plugin: file.read, with: {path: x}}]}
"""


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RECONCILER), "graph", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "deploy.yaml").write_text(DEPLOY)
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "report.yml").write_text(REPORT)
    return tmp_path


def test_graph_of_a_single_file_prints_mermaid_by_default(tree: Path) -> None:
    done = run(str(tree / "deploy.yaml"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert "    [*] --> s_build" in lines
    assert "    s_build --> s_failed : CommandFailed, Timeout" in lines
    assert "    s_done --> [*]" in lines


def test_graph_picks_a_workflow_by_name_in_a_directory_and_prints_dot(tree: Path) -> None:
    done = run(str(tree), "--workflow", "report", "--format", "dot", "--current", "wait")
    assert done.returncode == 0, done.stderr
    (graph,) = pydot.graph_from_dot_data(done.stdout) or []
    labels = {str(e.get("label")).strip('"') for e in graph.get_edges() if e.get("label")}
    assert labels == {"when inputs.ready == true", "after 1m30s"}
    (wait,) = graph.get_node('"wait"')
    assert wait.get("penwidth") == "3"


def test_graph_output_json_carries_the_diagram_and_its_states(tree: Path) -> None:
    done = run(str(tree / "deploy.yaml"), "-o", "json", "--format", "dot", "--current", "build")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["workflow"] == "deploy" and document["format"] == "dot"
    assert document["states"] == ["build", "done", "failed"]
    assert document["current"] == "build" and document["visited"] == []
    (graph,) = pydot.graph_from_dot_data(document["diagram"]) or []
    assert graph.get_node('"build"')


def test_graph_highlights_current_and_visited_states(tree: Path) -> None:
    done = run(str(tree / "deploy.yaml"), "--current", "failed", "--visited", "build,failed")
    assert done.returncode == 0, done.stderr
    assert "    class s_build visited" in done.stdout
    assert "    class s_failed current" in done.stdout


def test_directory_with_several_workflows_needs_a_name(tree: Path) -> None:
    done = run(str(tree))
    assert done.returncode == 2
    assert done.stdout == ""
    assert "--workflow" in done.stderr and "deploy" in done.stderr and "report" in done.stderr


def test_unknown_workflow_name_suggests_the_closest(tree: Path) -> None:
    done = run(str(tree), "--workflow", "deplyo")
    assert done.returncode == 2
    assert "did you mean 'deploy'" in done.stderr


def test_unknown_current_state_is_refused_with_the_list_of_states(tree: Path) -> None:
    done = run(str(tree / "deploy.yaml"), "--current", "biuld")
    assert done.returncode == 2
    assert "no state 'biuld'" in done.stderr and "did you mean 'build'" in done.stderr


def test_invalid_workflow_exits_1_and_shows_its_problem(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text(BROKEN)
    done = run(str(tmp_path / "broken.yaml"))
    assert done.returncode == 1
    assert "broken.yaml:" in done.stderr and "invalid" in done.stderr


def test_missing_path_exits_2(tmp_path: Path) -> None:
    done = run(str(tmp_path / "nope.yaml"))
    assert done.returncode == 2
    assert "no such file or directory" in done.stderr


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz `dot` binary not installed")
def test_every_quickstart_example_renders_with_graphviz() -> None:
    snapshot = load_tree(QUICKSTART)
    assert len(snapshot.workflows) >= 3 and not snapshot.invalid
    for name, loaded in snapshot.workflows.items():
        for text in (
            to_dot(loaded.workflow),
            to_dot(loaded.workflow, current=loaded.workflow.spec.start),
        ):
            svg = subprocess.run(
                ["dot", "-Tsvg"],
                input=text,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert svg.returncode == 0, f"{name}: {svg.stderr}"
            assert "<svg" in svg.stdout
