"""Checks around a run: pre blocks it, during aborts it, post fails it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from reconciler.engine.journal import EventKind, RunStatus
from reconciler.engine.runner import Engine
from reconciler.errors import CheckFailed
from reconciler.plugin import PluginRegistry

END = {"done": {"end": "success"}, "failed": {"end": "failure"}}
WORK = {"work": {"action": {"plugin": "test.echo"}, "next": "done"}, **END}


async def test_failing_pre_check_blocks_the_run_before_any_state(
    engine: Engine, registry: PluginRegistry, wf: Any, entries: Any
) -> None:
    w = wf(
        WORK,
        checks={
            "pre": [{"plugin": "test.health"}, {"plugin": "test.health", "with": {"fail_after": 0}}]
        },
    )
    result = await engine.run(w)
    assert result.run.status is RunStatus.FAILED and result.path == []
    assert isinstance(result.error, CheckFailed)
    assert "blocked by pre check #1 (test.health)" in result.error.message
    assert registry.instance("test.echo").calls == []
    log = await entries(result.run.id)
    checks = [e for e in log if e.kind is EventKind.CHECK]
    assert [(c.detail["phase"], c.outcome) for c in checks] == [
        ("pre", "success"),
        ("pre", "ConnectionFailed"),
    ]
    assert EventKind.STATE_ENTERED not in [e.kind for e in log]
    assert "blocked by pre check" in (result.run.error or "")


async def test_passing_pre_checks_let_the_run_proceed(engine: Engine, wf: Any) -> None:
    result = await engine.run(wf(WORK, checks={"pre": [{"plugin": "test.health"}]}))
    assert result.ok and result.path == ["work", "done"]


async def test_failing_during_check_cancels_the_current_state_and_fails_the_run(
    engine: Engine, registry: PluginRegistry, wf: Any, entries: Any
) -> None:
    w = wf(
        {
            "work": {
                "action": {"plugin": "test.sleep", "with": {"seconds": 10}},
                "transitions": [{"to": "done", "on": "success"}, {"to": "done", "on": "error"}],
            },
            **END,
        },
        checks={
            "during": {
                "every": "10ms",
                "checks": [{"plugin": "test.health", "with": {"fail_after": 2}}],
            }
        },
    )
    result = await asyncio.wait_for(engine.run(w), 5)
    assert isinstance(result.error, CheckFailed) and "during check failed" in result.error.message
    assert result.path == ["work"] and result.run.status is RunStatus.FAILED
    assert registry.instance("test.sleep").cancelled == 1
    assert registry.instance("test.health").calls == 3
    failed = [
        e
        for e in await entries(result.run.id)
        if e.kind is EventKind.CHECK and e.outcome != "success"
    ]
    assert failed[0].detail["phase"] == "during" and failed[0].detail["plugin"] == "test.health"


async def test_during_checks_stop_when_the_states_are_done(
    engine: Engine, registry: PluginRegistry, wf: Any
) -> None:
    w = wf(WORK, checks={"during": {"every": "5ms", "checks": [{"plugin": "test.health"}]}})
    result = await engine.run(w)
    calls = registry.instance("test.health").calls
    await asyncio.sleep(0.03)  # time passing is the test: six periods and no further check
    assert result.ok and registry.instance("test.health").calls == calls


async def test_failing_post_check_turns_success_into_failure(
    engine: Engine, registry: PluginRegistry, wf: Any
) -> None:
    w = wf(WORK, checks={"post": [{"plugin": "test.health", "with": {"fail_after": 0}}]})
    result = await engine.run(w)
    assert result.path == ["work", "done"] and result.run.status is RunStatus.FAILED
    assert isinstance(result.error, CheckFailed) and "post check failed" in result.error.message
    assert len(registry.instance("test.echo").calls) == 1


async def test_a_resumed_run_does_not_repeat_its_pre_checks(
    engine: Engine, registry: PluginRegistry, journal: Any, wf: Any
) -> None:
    w = wf(WORK, checks={"pre": [{"plugin": "test.health"}]})
    first = await engine.run(w)
    assert registry.instance("test.health").calls == 1
    interrupted = replace(first.run, status=RunStatus.RUNNING, current_state="work")
    resumed = await engine.run(w, resume=interrupted)
    assert resumed.ok and resumed.path == ["work", "done"]
    assert registry.instance("test.health").calls == 1
