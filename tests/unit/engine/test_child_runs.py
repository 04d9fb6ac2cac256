"""workflow.run: a child run linked to its parent; a failing child fails its parent unless routed."""

from __future__ import annotations

from typing import Any

from reconciler.engine.journal import MemoryJournal, RunStatus
from reconciler.engine.runner import Engine
from reconciler.plugin import PluginRegistry

END = {"done": {"end": "success"}, "failed": {"end": "failure"}}


def child_workflow(wf: Any, *, fail: bool = False) -> Any:
    action = (
        {"plugin": "test.fail"}
        if fail
        else {
            "plugin": "test.echo",
            "with": {"value": "${{ inputs.who }}@${{ inputs.where }}", "changed": True},
            "as": "greeting",
        }
    )
    return wf(
        {"greet": {"action": action, "next": "done"}, **END},
        name="child",
        inputs={"who": "default", "where": "home"},
    )


async def test_child_run_is_linked_to_its_parent_and_returns_outputs(
    registry: PluginRegistry, journal: MemoryJournal, wf: Any
) -> None:
    parent = wf(
        {
            "call": {
                "action": {
                    "plugin": "workflow.run",
                    "with": {"workflow": "child", "inputs": {"who": "ada"}},
                    "as": "child",
                },
                "next": "done",
            },
            **END,
        },
        name="parent",
    )
    engine = Engine(registry, journal=journal, workflows={"child": child_workflow(wf)})
    result = await engine.run(parent, revision="rev1")
    assert result.ok and result.changed
    child_id = result.outputs["child"]["runId"]
    child = await journal.get_run(child_id)
    assert child is not None and child.parent_id == result.run.id
    assert (
        child.workflow == "child"
        and child.revision == "rev1"
        and child.status is RunStatus.SUCCEEDED
    )
    assert result.outputs["child"]["outputs"]["greeting"]["value"] == "ada@home"


async def test_a_failing_child_fails_its_parent_naming_the_child_run(
    registry: PluginRegistry, journal: MemoryJournal, wf: Any
) -> None:
    parent = wf(
        {
            "call": {
                "action": {"plugin": "workflow.run", "with": {"workflow": "child"}},
                "next": "done",
            },
            **END,
        },
        name="parent",
    )
    engine = Engine(registry, journal=journal, workflows={"child": child_workflow(wf, fail=True)})
    result = await engine.run(parent)
    assert result.run.status is RunStatus.FAILED
    assert result.error is not None and result.error.name == "ChildRunFailed"
    [child] = [r for r in journal.runs.values() if r.parent_id == result.run.id]
    assert child.status is RunStatus.FAILED and child.id in result.error.message


async def test_a_failing_child_can_be_routed(
    registry: PluginRegistry, journal: MemoryJournal, wf: Any
) -> None:
    parent = wf(
        {
            "call": {
                "action": {"plugin": "workflow.run", "with": {"workflow": "child"}},
                "transitions": [
                    {"to": "done", "on": "success"},
                    {"to": "recover", "on": "ChildRunFailed"},
                ],
            },
            "recover": {"end": "success"},
            **END,
        },
        name="parent",
    )
    engine = Engine(registry, journal=journal, workflows={"child": child_workflow(wf, fail=True)})
    assert (await engine.run(parent)).path == ["call", "recover"]


async def test_an_unknown_child_workflow_is_not_found(
    registry: PluginRegistry, journal: MemoryJournal, wf: Any
) -> None:
    parent = wf(
        {
            "call": {
                "action": {"plugin": "workflow.run", "with": {"workflow": "ghost"}},
                "next": "done",
            },
            **END,
        },
        name="parent",
    )
    result = await Engine(registry, journal=journal).run(parent)
    assert result.error is not None and result.error.name == "NotFound"


async def test_a_workflow_running_itself_stops_at_the_depth_limit(
    registry: PluginRegistry, journal: MemoryJournal, wf: Any
) -> None:
    loop = wf(
        {
            "call": {
                "action": {"plugin": "workflow.run", "with": {"workflow": "loop"}},
                "next": "done",
            },
            **END,
        },
        name="loop",
    )
    result = await Engine(registry, journal=journal, workflows={"loop": loop}).run(loop)
    assert result.error is not None and result.error.name == "ChildRunFailed"
