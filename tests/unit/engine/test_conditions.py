"""Race conditions of a state: after, poll and subscribe run together; the first to fire wins."""

from __future__ import annotations

import asyncio
from typing import Any

from reconciler.engine.journal import EventKind
from reconciler.engine.runner import Engine
from reconciler.plugin import PluginRegistry

END = {"done": {"end": "success"}, "failed": {"end": "failure"}}


def poll_to_done(
    plugin: str, with_: dict[str, Any], *, every: str, until: str = "true"
) -> dict[str, Any]:
    """A transition to ``done`` once an answer of ``plugin``, asked every ``every``, passes
    ``until``."""
    return {
        "to": "done",
        "poll": {"plugin": plugin, "with": with_, "every": every, "until": until},
    }


async def test_a_wait_beats_a_slow_poll_and_the_poll_sees_cancellation(
    engine: Engine, registry: PluginRegistry, wf: Any, entries: Any
) -> None:
    w = wf(
        {
            "wait": {
                "transitions": [
                    poll_to_done("test.probe", {"seconds": 5}, every="1ms"),
                    {"to": "failed", "after": "30ms"},
                ]
            },
            **END,
        }
    )
    result = await asyncio.wait_for(engine.run(w), 5)
    assert result.path == ["wait", "failed"]
    probe = registry.instance("test.probe")
    assert probe.calls == 1 and probe.cancelled == 1
    t = next(e for e in await entries(result.run.id) if e.kind is EventKind.TRANSITION)
    assert t.detail["condition"] == "after"


async def test_poll_fires_when_until_becomes_true_and_the_wait_is_cancelled(
    engine: Engine, registry: PluginRegistry, wf: Any
) -> None:
    w = wf(
        {
            "wait": {
                "transitions": [
                    {"to": "failed", "after": "10s"},
                    {
                        "to": "done",
                        "poll": {
                            "plugin": "test.probe",
                            "with": {"value": "${{ inputs.v }}"},
                            "every": "5ms",
                            "until": "result.value == 'ready'",
                        },
                    },
                ]
            },
            **END,
        },
        inputs={"v": "ready"},
    )
    result = await asyncio.wait_for(engine.run(w), 5)
    assert result.path == ["wait", "done"]


async def test_a_non_retryable_poll_error_ends_the_wait_and_is_routed(
    engine: Engine, registry: PluginRegistry, wf: Any
) -> None:
    w = wf(
        {
            "wait": {
                "transitions": [
                    poll_to_done("test.fail", {"error": "NotFound"}, every="1ms"),
                    {"to": "failed", "after": "10s"},
                    {"to": "missing", "on": "NotFound"},
                ]
            },
            "missing": {"end": "success"},
            **END,
        }
    )
    result = await asyncio.wait_for(engine.run(w), 5)
    assert result.path == ["wait", "missing"]
    assert len(registry.instance("test.fail").calls) == 1


async def test_poll_retries_through_retryable_errors(
    engine: Engine, registry: PluginRegistry, wf: Any
) -> None:
    w = wf(
        {
            "wait": {
                "transitions": [
                    poll_to_done(
                        "test.fail", {"error": "ConnectionFailed", "times": 3}, every="2ms"
                    ),
                    {"to": "failed", "after": "5s"},
                ]
            },
            **END,
        }
    )
    result = await asyncio.wait_for(engine.run(w), 5)
    assert result.path == ["wait", "done"]
    assert len(registry.instance("test.fail").calls) == 4


async def test_subscribe_fires_on_the_first_matching_message_and_closes_the_stream(
    engine: Engine, registry: PluginRegistry, wf: Any
) -> None:
    messages = [{"data": {"db": "other"}}, {"data": {"db": "app"}}, {"data": {"db": "app2"}}]
    w = wf(
        {
            "wait": {
                "transitions": [
                    {
                        "to": "done",
                        "subscribe": {
                            "plugin": "test.messages",
                            "with": {"messages": messages, "gap": 0.005},
                            "match": "message.data.db == inputs.database",
                        },
                    },
                    {"to": "failed", "after": "10s"},
                ]
            },
            **END,
        },
        inputs={"database": "app"},
    )
    result = await asyncio.wait_for(engine.run(w), 5)
    assert result.path == ["wait", "done"]
    source = registry.instance("test.messages")
    assert source.delivered == 2 and source.closed == 1


async def test_a_losing_subscription_is_cancelled_and_closed(
    engine: Engine, registry: PluginRegistry, wf: Any
) -> None:
    w = wf(
        {
            "wait": {
                "transitions": [
                    {
                        "to": "failed",
                        "subscribe": {
                            "plugin": "test.messages",
                            "with": {"messages": [{"x": 1}], "gap": 5},
                        },
                    },
                    {"to": "done", "after": "20ms"},
                ]
            },
            **END,
        }
    )
    result = await asyncio.wait_for(engine.run(w), 5)
    assert result.path == ["wait", "done"]
    source = registry.instance("test.messages")
    assert source.cancelled == 1 and source.closed == 1 and source.delivered == 0


async def test_subscribe_on_a_plugin_without_a_stream_is_an_invalid_request(
    engine: Engine, wf: Any
) -> None:
    w = wf(
        {
            "wait": {
                "transitions": [
                    {"to": "done", "subscribe": {"plugin": "test.probe"}},
                    {"to": "failed", "after": "10s"},
                ]
            },
            **END,
        }
    )
    result = await asyncio.wait_for(engine.run(w), 5)
    assert result.error is not None and result.error.name == "InvalidRequest"
