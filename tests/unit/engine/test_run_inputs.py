"""Runs with inputs: parameter defaults fill ``inputs.*``, a run's own inputs win, are kept in
its record and ``run_started`` entry (redacted), and come back when the run is resumed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.journal import EventKind, MemoryJournal, RunStatus
from reconciler.engine.runner import Engine
from reconciler.grants import Grants
from reconciler.plugin import PluginRegistry

END = {"done": {"end": "success"}, "failed": {"end": "failure"}}
CANARY = "canary-inputs-7Hq!x"
PARAMETERS = {
    "replicas": {"type": "integer", "default": 2},
    "env": {"type": "string", "default": "staging"},
}


def echo(value: str, *, to: str, name: str | None = None) -> dict[str, Any]:
    action: dict[str, Any] = {"plugin": "test.echo", "with": {"value": value}}
    if name:
        action["as"] = name
    return {"action": action, "next": to}


async def test_parameter_defaults_fill_inputs_of_a_run_nobody_set_them_for(
    engine: Engine, registry: PluginRegistry, wf: Any
) -> None:
    w = wf(
        {"a": echo("${{ inputs.replicas }} ${{ inputs.env }} ${{ inputs.day }}", to="done"), **END},
        parameters=PARAMETERS,
        inputs={"day": "mon"},
    )
    result = await engine.run(w)
    assert result.ok, result.error
    assert registry.instance("test.echo").calls[0]["value"] == "2 staging mon"
    assert result.run.inputs is None


async def test_a_runs_inputs_win_over_the_defaults_and_are_recorded_with_the_run(
    engine: Engine, registry: PluginRegistry, journal: MemoryJournal, wf: Any
) -> None:
    w = wf({"a": echo("${{ inputs.replicas * 10 }}", to="done"), **END}, parameters=PARAMETERS)
    result = await engine.run(w, reason="manual", inputs={"replicas": 5})
    assert result.ok, result.error
    assert (
        registry.instance("test.echo").calls[0]["value"] == 50
    )  # an integer: inputs keep their type
    stored = await journal.get_run(result.run.id)
    assert stored is not None and stored.inputs == {"replicas": 5}
    started = (await journal.entries(result.run.id))[0]
    assert started.kind is EventKind.RUN_STARTED
    assert started.detail["inputs"] == {"replicas": 5}


async def test_a_run_without_inputs_journals_none(
    engine: Engine, journal: MemoryJournal, wf: Any
) -> None:
    w = wf({"a": echo("x", to="done"), **END}, parameters=PARAMETERS)
    result = await engine.run(w)
    started = (await journal.entries(result.run.id))[0]
    assert "inputs" not in started.detail


async def test_an_interrupted_run_resumes_with_the_inputs_it_was_started_with(
    registry: PluginRegistry, journal: MemoryJournal, wf: Any
) -> None:
    w = wf(
        {
            "a": echo("${{ inputs.env }}", to="b"),
            "b": {"action": {"plugin": "test.sleep", "with": {"seconds": 30}}, "next": "c"},
            "c": echo("${{ inputs.env }}", to="done"),
            **END,
        },
        parameters=PARAMETERS,
    )
    task = asyncio.create_task(
        Engine(registry, journal=journal).run(w, run_id="r1", inputs={"env": "prod"})
    )
    await asyncio.wait_for(registry.instance("test.sleep").started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    interrupted = await journal.get_run("r1")
    assert interrupted is not None and interrupted.current_state == "b"
    interrupted.status = RunStatus.RUNNING  # a crash leaves the record running
    quick = wf(
        {
            "a": echo("${{ inputs.env }}", to="b"),
            "b": echo("slept", to="c"),
            "c": echo("${{ inputs.env }}", to="done"),
            **END,
        },
        parameters=PARAMETERS,
    )
    result = await Engine(registry, journal=journal).run(quick, resume=interrupted)
    assert result.ok, result.error
    values = [c["value"] for c in registry.instance("test.echo").calls]
    assert values == ["prod", "slept", "prod"]
    assert result.run.inputs == {"env": "prod"}


async def test_a_secret_in_a_child_runs_inputs_is_masked_in_its_record_and_journal(
    registry: PluginRegistry,
    journal: MemoryJournal,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    wf: Any,
) -> None:
    monkeypatch.setenv("RECONCILER_TEST_CANARY", CANARY)
    grants = Grants.for_daemon(
        workdir=tmp_path, file_roots=None, allow_env=["RECONCILER_TEST_CANARY"]
    )
    child = wf({"a": echo("ok", to="done"), **END}, name="child", inputs={"tok": ""})
    parent = wf(
        {
            "call": {
                "action": {
                    "plugin": "workflow.run",
                    "with": {"workflow": "child", "inputs": {"tok": "${{ secrets.tok }}"}},
                    "as": "child",
                },
                "next": "done",
            },
            **END,
        },
        name="parent",
        secrets={"tok": "env:RECONCILER_TEST_CANARY"},
    )
    engine = Engine(
        registry, journal=journal, workdir=tmp_path, grants=grants, workflows={"child": child}
    )
    result = await engine.run(parent)
    assert result.ok, result.error
    child_id = result.outputs["child"]["runId"]
    record = await journal.get_run(child_id)
    assert record is not None and record.inputs == {"tok": "***"}
    started = (await journal.entries(child_id))[0]
    assert started.detail["inputs"] == {"tok": "***"}
    assert CANARY not in repr(await journal.entries(child_id))


async def test_an_input_holding_expression_syntax_is_text_never_evaluated(
    engine: Engine, registry: PluginRegistry, wf: Any
) -> None:
    w = wf({"a": echo("got ${{ inputs.env }}", to="done"), **END}, parameters=PARAMETERS)
    result = await engine.run(w, inputs={"env": "${{ 6 * 7 }}"})
    assert result.ok, result.error
    assert registry.instance("test.echo").calls[0]["value"] == "got ${{ 6 * 7 }}"
