"""``workflow.run`` across the snapshot: a child that does not exist, and workflows that run
each other in a cycle, are found by ``validate`` with the file, line and column of the call."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

from reconciler_plugins.workflow import WorkflowRun

from reconciler.config.loader import load_tree
from reconciler.config.snapshot import Problem
from reconciler.config.validate import validate_snapshot
from reconciler.plugin import PluginRegistry

REGISTRY = PluginRegistry({"workflow.run": WorkflowRun})


def errors(tmp_path: Path) -> list[Problem]:
    """The errors ``validate`` finds in the workflows of ``tmp_path`` (no warnings)."""
    return [p for p in validate_snapshot(load_tree(tmp_path), REGISTRY) if p.severity == "error"]


def caller(tmp_path: Path, name: str, *children: str) -> None:
    """Workflow ``name`` whose states run each of ``children`` in turn."""
    states = []
    for i, child in enumerate(children):
        following = f"s{i + 1}" if i + 1 < len(children) else "done"
        states.append(
            f"    s{i}:\n"
            f"      action: {{plugin: workflow.run, with: {{workflow: {child!r}}}}}\n"
            f"      next: {following}\n"
        )
    body = dedent(
        f"""\
        apiVersion: reconciler/v1
        kind: Workflow
        metadata: {{name: {name}}}
        spec:
          start: {"s0" if children else "done"}
          states:
        """
    )
    (tmp_path / f"{name}.yaml").write_text(body + "".join(states) + "    done: {end: success}\n")


def test_a_child_that_does_not_exist_is_named_with_a_did_you_mean(tmp_path: Path) -> None:
    caller(tmp_path, "nightly", "rotate-keys", "rotat-certs")
    caller(tmp_path, "rotate-keys")
    caller(tmp_path, "rotate-certs")
    [unknown] = errors(tmp_path)
    assert unknown.path == "nightly.yaml" and unknown.workflow == "nightly"
    assert (unknown.line, unknown.column) == (11, 55)  # the name itself
    assert unknown.message == (
        "workflow.run: unknown workflow 'rotat-certs'; did you mean 'rotate-certs'?"
    )
    assert unknown.severity == "error"


def test_workflows_that_run_each_other_are_a_cycle(tmp_path: Path) -> None:
    caller(tmp_path, "a", "b")
    caller(tmp_path, "b", "c", "b")
    caller(tmp_path, "c", "a")
    caller(tmp_path, "leaf")
    caller(tmp_path, "top", "leaf", "leaf")
    found = sorted((p.path, p.message.split(" (")[0]) for p in errors(tmp_path))
    assert found == [
        ("a.yaml", "workflow.run cycle: a -> b -> c -> a"),
        ("b.yaml", "workflow.run cycle: a -> b -> c -> a"),
        ("c.yaml", "workflow.run cycle: a -> b -> c -> a"),
    ]


def test_a_child_named_by_an_expression_is_left_to_run_time(tmp_path: Path) -> None:
    (tmp_path / "dyn.yaml").write_text(
        dedent(
            """\
            apiVersion: reconciler/v1
            kind: Workflow
            metadata: {name: dyn}
            spec:
              inputs: {child: whatever}
              start: go
              states:
                go:
                  action: {plugin: workflow.run, with: {workflow: "${{ inputs.child }}"}}
                  next: done
                done: {end: success}
            """
        )
    )
    assert errors(tmp_path) == []
