"""The run loop: actions, transitions, errors, timeouts, retries, resume, cancellation."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest

from reconciler.engine.journal import EventKind, MemoryJournal, RunStatus
from reconciler.engine.runner import Engine
from reconciler.errors import ActionError, Cancelled, ConnectionFailed, PluginError, Timeout
from reconciler.plugin import ActionContext, Plugin, PluginRegistry, Request, Response

END = {"done": {"end": "success"}, "failed": {"end": "failure"}}


async def test_actions_run_in_order_and_outputs_feed_later_actions(
    engine: Engine, registry: PluginRegistry, wf: Any, entries: Any
) -> None:
    w = wf(
        {
            "work": {
                "do": [
                    {"plugin": "test.echo", "with": {"value": 1}, "as": "first"},
                    {"plugin": "test.echo", "with": {"value": "${{ outputs.first.value + 1 }}"}},
                    {
                        "plugin": "test.echo",
                        "with": {"value": "${{ inputs.n }}-${{ run.workflow }}"},
                    },
                ],
                "next": "done",
            },
            **END,
        },
        inputs={"n": 9},
    )
    result = await engine.run(w, reason="test")
    assert result.error is None and result.ok and result.end == "success"
    assert [c["value"] for c in registry.instance("test.echo").calls] == [1, 2, "9-wf"]
    assert result.path == ["work", "done"]
    assert result.outputs == {"first": {"changed": False, "value": 1}}
    log = await entries(result.run.id)
    assert [e.kind for e in log] == [
        EventKind.RUN_STARTED,
        EventKind.STATE_ENTERED,
        EventKind.ACTION,
        EventKind.ACTION,
        EventKind.ACTION,
        EventKind.TRANSITION,
        EventKind.STATE_ENTERED,
        EventKind.RUN_FINISHED,
    ]
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    assert [e.detail["index"] for e in log if e.kind is EventKind.ACTION] == [0, 1, 2]


async def test_run_record_is_journaled_with_final_status(
    engine: Engine, journal: MemoryJournal, wf: Any
) -> None:
    result = await engine.run(
        wf({"a": {"action": {"plugin": "test.echo"}, "next": "done"}, **END}),
        reason="manual",
        revision="abc123",
    )
    stored = await journal.get_run(result.run.id)
    assert stored is not None
    assert (stored.status, stored.reason, stored.revision) == (
        RunStatus.SUCCEEDED,
        "manual",
        "abc123",
    )
    assert stored.finished_at is not None and len(stored.id) == 32


async def test_transition_is_journaled_before_the_next_state_is_entered(
    engine: Engine, wf: Any, entries: Any
) -> None:
    w = wf(
        {
            "a": {"action": {"plugin": "test.echo", "as": "x"}, "next": "b"},
            "b": {"action": {"plugin": "test.echo"}, "next": "done"},
            **END,
        }
    )
    result = await engine.run(w)
    log = await entries(result.run.id)
    t = next(e for e in log if e.kind is EventKind.TRANSITION)
    entered_b = next(e for e in log if e.kind is EventKind.STATE_ENTERED and e.state == "b")
    assert t.seq < entered_b.seq
    assert (t.state, t.to_state, t.outcome) == ("a", "b", "success")
    assert t.detail["outputs"] == {"x": {"changed": False, "value": None}}


async def test_named_error_routes_to_its_transition(engine: Engine, wf: Any) -> None:
    w = wf(
        {
            "a": {
                "action": {"plugin": "test.fail", "with": {"error": "Conflict"}},
                "transitions": [
                    {"to": "done", "on": "success"},
                    {"to": "notfound", "on": ["NotFound"]},
                    {"to": "conflict", "on": ["Conflict", "Timeout"]},
                    {"to": "failed", "on": "error"},
                ],
            },
            "notfound": {"end": "failure"},
            "conflict": {"end": "success"},
            **END,
        }
    )
    result = await engine.run(w)
    assert result.path == ["a", "conflict"] and result.ok


async def test_ancestor_names_catch_specific_errors(engine: Engine, wf: Any, entries: Any) -> None:
    w = wf(
        {
            "a": {
                "action": {"plugin": "test.fail", "with": {"error": "HTTP5xx", "message": "502"}},
                "transitions": [{"to": "http", "on": "HTTPError"}, {"to": "failed", "on": "error"}],
            },
            "http": {
                "action": {"plugin": "test.fail", "with": {"error": "CommandFailed"}},
                "transitions": [{"to": "plugin", "on": "PluginError"}],
            },
            "plugin": {"end": "success"},
            **END,
        }
    )
    result = await engine.run(w)
    assert result.path == ["a", "http", "plugin"]
    log = await entries(result.run.id)
    outcomes = [(e.state, e.outcome) for e in log if e.kind is EventKind.TRANSITION]
    assert outcomes == [("a", "HTTP5xx"), ("http", "CommandFailed")]


async def test_unrouted_error_fails_the_run_with_that_error(
    engine: Engine, journal: MemoryJournal, wf: Any
) -> None:
    w = wf(
        {
            "a": {
                "action": {
                    "plugin": "test.fail",
                    "with": {"error": "NotFound", "message": "no db"},
                },
                "transitions": [
                    {"to": "done", "on": "success"},
                    {"to": "failed", "on": "Conflict"},
                ],
            },
            **END,
        }
    )
    result = await engine.run(w)
    assert result.run.status is RunStatus.FAILED and result.path == ["a"]
    assert result.error is not None and result.error.name == "NotFound"
    stored = await journal.get_run(result.run.id)
    assert stored is not None and stored.error == "NotFound: no db"


async def test_reaching_a_failure_end_state_fails_the_run(engine: Engine, wf: Any) -> None:
    w = wf({"a": {"action": {"plugin": "test.fail"}, "onError": "failed", "next": "done"}, **END})
    result = await engine.run(w)
    assert result.path == ["a", "failed"] and result.end == "failure"
    assert result.run.status is RunStatus.FAILED
    assert result.error is not None and "failed" in result.error.message


async def test_when_choices_are_taken_in_order_after_success(engine: Engine, wf: Any) -> None:
    w = wf(
        {
            "a": {
                "action": {"plugin": "test.echo", "with": {"value": 5}, "as": "r"},
                "transitions": [
                    {"to": "small", "when": "outputs.r.value < 3"},
                    {"to": "mid", "when": "outputs.r.value < 10"},
                    {"to": "mid2", "when": "outputs.r.value < 100"},
                    {"to": "failed"},
                ],
            },
            "small": {"end": "failure"},
            "mid": {"end": "success"},
            "mid2": {"end": "failure"},
            **END,
        }
    )
    assert (await engine.run(w)).path == ["a", "mid"]


async def test_default_branch_when_no_choice_is_true(engine: Engine, wf: Any, entries: Any) -> None:
    w = wf(
        {"a": {"transitions": [{"to": "failed", "when": "inputs.x == 1"}, {"to": "done"}]}, **END},
        inputs={"x": 2},
    )
    result = await engine.run(w)
    assert result.path == ["a", "done"]
    log = await entries(result.run.id)
    assert next(e for e in log if e.kind is EventKind.TRANSITION).detail["condition"] == "default"


async def test_no_transition_fired_fails_with_a_clear_error(engine: Engine, wf: Any) -> None:
    w = wf({"a": {"transitions": [{"to": "done", "when": "false"}]}, **END})
    result = await engine.run(w)
    assert result.error is not None
    assert result.error.message == "no transition fired in state 'a'"


async def test_state_timeout_routes_a_timeout_error(
    engine: Engine, registry: PluginRegistry, wf: Any
) -> None:
    w = wf(
        {
            "slow": {
                "action": {"plugin": "test.sleep", "with": {"seconds": 5}},
                "timeout": "50ms",
                "transitions": [
                    {"to": "done", "on": "success"},
                    {"to": "timedout", "on": "Timeout"},
                ],
            },
            "timedout": {"end": "success"},
            **END,
        }
    )
    result = await asyncio.wait_for(engine.run(w), 5)
    assert result.path == ["slow", "timedout"]
    assert registry.instance("test.sleep").cancelled == 1


async def test_state_timeout_restarts_on_every_entry(engine: Engine, wf: Any) -> None:
    # each visit takes ~30ms of a 200ms state timeout; eight visits (~240ms) exceed it in total
    w = wf(
        {
            "loop": {
                "do": [
                    {"plugin": "test.sleep", "with": {"seconds": 0.03}},
                    {"plugin": "test.echo", "with": {"value": "${{ run.id }}"}},
                ],
                "timeout": "200ms",
                "transitions": [
                    {"to": "failed", "on": "Timeout"},
                    {"to": "done", "when": "size(outputs) > 0 && outputs.n.value >= 7"},
                    {"to": "count"},
                ],
            },
            "count": {
                "action": {
                    "plugin": "test.echo",
                    "with": {"value": "${{ has(outputs.n) ? outputs.n.value + 1 : 1 }}"},
                    "as": "n",
                },
                "next": "loop",
            },
            **END,
        }
    )
    result = await asyncio.wait_for(engine.run(w), 10)
    assert result.error is None, result.error
    assert result.path.count("loop") == 8 and result.path[-1] == "done"


async def test_timeout_without_a_route_fails_the_run(engine: Engine, wf: Any) -> None:
    w = wf({"wait": {"timeout": "30ms", "transitions": [{"to": "done", "after": "10s"}]}, **END})
    result = await asyncio.wait_for(engine.run(w), 5)
    assert isinstance(result.error, Timeout) and "'wait' timed out after 30ms" in str(result.error)


async def test_run_deadline_ends_the_run_failed_with_timeout(
    engine: Engine, registry: PluginRegistry, wf: Any
) -> None:
    w = wf(
        {
            "a": {
                "action": {"plugin": "test.sleep", "with": {"seconds": 5}},
                "transitions": [{"to": "done", "on": "success"}, {"to": "done", "on": "Timeout"}],
            },
            **END,
        },
        timeout="60ms",
    )
    result = await asyncio.wait_for(engine.run(w), 5)
    # the run deadline is not routed by `on: Timeout`: the run itself is over
    assert result.path == ["a"] and result.run.status is RunStatus.FAILED
    assert isinstance(result.error, Timeout) and "run deadline" in result.error.message
    assert registry.instance("test.sleep").cancelled == 1


async def test_action_timeout_is_a_retryable_timeout(
    engine: Engine, registry: PluginRegistry, wf: Any
) -> None:
    w = wf(
        {
            "a": {
                "action": {"plugin": "test.sleep", "with": {"seconds": 5}, "timeout": "20ms"},
                "retry": {"attempts": 3, "delay": "1ms", "jitter": "none"},
                "transitions": [{"to": "done", "on": "success"}, {"to": "t", "on": "Timeout"}],
            },
            "t": {"end": "success"},
            **END,
        }
    )
    result = await asyncio.wait_for(engine.run(w), 5)
    assert result.path == ["a", "t"]
    assert registry.instance("test.sleep").cancelled == 3


async def test_retry_succeeds_after_transient_failures(
    engine: Engine, registry: PluginRegistry, wf: Any, entries: Any
) -> None:
    w = wf(
        {
            "a": {
                "action": {
                    "plugin": "test.fail",
                    "with": {"error": "ConnectionFailed", "times": 2},
                },
                "retry": {"attempts": 5, "delay": "10ms", "backoff": 2, "jitter": "none"},
                "next": "done",
                "onError": "failed",
            },
            **END,
        }
    )
    result = await engine.run(w)
    assert result.ok and result.changed
    calls = registry.instance("test.fail").calls
    assert [c["attempt"] for c in calls] == [1, 2, 3]
    # waits of 10ms then 20ms (backoff 2), generous upper bound only
    assert calls[1]["at"] - calls[0]["at"] >= 0.009
    assert calls[2]["at"] - calls[1]["at"] >= 0.019
    actions = [e for e in await entries(result.run.id) if e.kind is EventKind.ACTION]
    assert [(e.detail["attempt"], e.detail["ok"]) for e in actions] == [
        (1, False),
        (2, False),
        (3, True),
    ]
    assert actions[0].detail["error"]["name"] == "ConnectionFailed"


async def test_retry_stops_early_on_a_non_retryable_error(
    engine: Engine, registry: PluginRegistry, wf: Any
) -> None:
    w = wf(
        {
            "a": {
                "action": {"plugin": "test.fail", "with": {"error": "Conflict"}},
                "retry": {"attempts": 5, "delay": "1ms"},
                "onError": "failed",
                "next": "done",
            },
            **END,
        }
    )
    result = await engine.run(w)
    assert result.path == ["a", "failed"]
    assert len(registry.instance("test.fail").calls) == 1


async def test_retry_gives_up_after_the_last_attempt(
    engine: Engine, registry: PluginRegistry, wf: Any
) -> None:
    w = wf(
        {
            "a": {
                "action": {"plugin": "test.fail", "with": {"error": "HTTP5xx"}},
                "retry": {"attempts": 3, "delay": "1ms"},
                "next": "done",
            },
            **END,
        }
    )
    result = await engine.run(w)
    assert result.error is not None and result.error.name == "HTTP5xx"
    assert len(registry.instance("test.fail").calls) == 3


async def test_idempotency_key_is_stable_across_retries(
    engine: Engine, registry: PluginRegistry, wf: Any
) -> None:
    w = wf(
        {
            "a": {
                "do": [
                    {"plugin": "test.echo"},
                    {"plugin": "test.fail", "with": {"error": "ConnectionFailed", "times": 2}},
                ],
                "retry": {"attempts": 3, "delay": "1ms"},
                "next": "done",
            },
            **END,
        },
    )
    result = await engine.run(w, run_id="r1")
    assert result.ok
    assert registry.instance("test.echo").calls[0]["key"] == "r1/a/0"
    assert {c["key"] for c in registry.instance("test.fail").calls} == {"r1/a/1"}


async def test_resume_reenters_the_journaled_state_with_the_same_keys(
    registry: PluginRegistry, journal: MemoryJournal, wf: Any, entries: Any
) -> None:
    w = wf(
        {
            "a": {
                "action": {"plugin": "test.echo", "with": {"value": "A"}, "as": "a"},
                "next": "b",
            },
            "b": {"action": {"plugin": "test.sleep", "with": {"seconds": 10}}, "next": "c"},
            "c": {
                "action": {"plugin": "test.echo", "with": {"value": "${{ outputs.a.value }}"}},
                "next": "done",
            },
            **END,
        }
    )
    # a first process runs until it is killed while in state b
    task = asyncio.create_task(Engine(registry, journal=journal).run(w, run_id="crashy"))
    await asyncio.wait_for(registry.instance("test.sleep").started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    interrupted = await journal.get_run("crashy")
    assert interrupted is not None and interrupted.current_state == "b"
    assert interrupted.outputs == {"a": {"changed": False, "value": "A"}}

    # a crash leaves the record "running": simulate it, then a new engine resumes it
    interrupted.status = RunStatus.RUNNING
    fast = wf(
        {
            **{k: v.model_dump(by_alias=True, exclude_none=True) for k, v in w.spec.states.items()},
            "b": {"action": {"plugin": "test.echo", "with": {"value": "B"}}, "next": "c"},
        }
    )
    result = await Engine(registry, journal=journal).run(fast, resume=interrupted)
    assert result.ok and result.run.id == "crashy"
    assert result.path == ["b", "c", "done"] and result.run.attempt == 2
    keys = [c["key"] for c in registry.instance("test.echo").calls]
    assert keys == ["crashy/a/0", "crashy/b/0", "crashy/c/0"]
    assert registry.instance("test.echo").calls[-1]["value"] == "A"  # outputs carried over
    log = await entries("crashy")
    assert EventKind.RUN_RESUMED in [e.kind for e in log]
    seqs = [e.seq for e in log]
    assert seqs == sorted(set(seqs))


async def test_cancelling_the_run_task_journals_a_cancelled_run(
    engine: Engine, journal: MemoryJournal, registry: PluginRegistry, wf: Any
) -> None:
    w = wf(
        {"a": {"action": {"plugin": "test.sleep", "with": {"seconds": 10}}, "next": "done"}, **END}
    )
    task = asyncio.create_task(engine.run(w, run_id="c1"))
    await asyncio.wait_for(registry.instance("test.sleep").started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stored = await journal.get_run("c1")
    assert stored is not None and stored.status is RunStatus.CANCELLED
    assert stored.error is not None and stored.error.startswith(Cancelled.__name__)
    assert (await journal.entries("c1"))[-1].kind is EventKind.RUN_FINISHED


class Boom(Plugin[Request, Response]):
    """A plugin with a bug: raises a non-ActionError."""

    Request = Request
    Response = Response

    async def run(self, request: Request, context: ActionContext) -> Response:
        raise ZeroDivisionError("division by zero")


async def test_a_crashing_plugin_becomes_a_plugin_error(
    engine: Engine, registry: PluginRegistry, wf: Any
) -> None:
    registry.register("test.boom", Boom)
    w = wf(
        {
            "a": {
                "action": {"plugin": "test.boom"},
                "transitions": [
                    {"to": "done", "on": "success"},
                    {"to": "caught", "on": "PluginError"},
                ],
            },
            "caught": {"end": "success"},
            **END,
        }
    )
    assert (await engine.run(w)).path == ["a", "caught"]


async def test_a_request_failing_the_plugin_model_is_invalid_request(
    engine: Engine, wf: Any
) -> None:
    w = wf(
        {
            "a": {
                "action": {"plugin": "test.sleep", "with": {"seconds": "${{ inputs.s }}"}},
                "next": "done",
            },
            **END,
        },
        inputs={"s": "not a number"},
    )
    result = await engine.run(w)
    assert result.error is not None and result.error.name == "InvalidRequest"


async def test_changed_is_true_when_any_action_changed_something(engine: Engine, wf: Any) -> None:
    unchanged = wf({"a": {"action": {"plugin": "test.echo"}, "next": "done"}, **END})
    changed = wf(
        {
            "a": {
                "do": [{"plugin": "test.echo"}, {"plugin": "test.echo", "with": {"changed": True}}],
                "next": "done",
            },
            **END,
        }
    )
    assert (await engine.run(unchanged)).changed is False
    assert (await engine.run(changed)).changed is True


async def test_unknown_plugin_at_run_time_is_a_journaled_plugin_error(
    engine: Engine, wf: Any, entries: Any
) -> None:
    result = await engine.run(wf({"a": {"action": {"plugin": "nope.nope"}, "next": "done"}, **END}))
    assert isinstance(result.error, PluginError) and "unknown plugin" in result.error.message
    [action] = [e for e in await entries(result.run.id) if e.kind is EventKind.ACTION]
    assert action.detail["plugin"] == "nope.nope" and action.detail["ok"] is False


def test_error_types_used_here_are_action_errors() -> None:
    assert issubclass(ConnectionFailed, ActionError) and ConnectionFailed.retryable


class NeedsInit(Plugin[Request, Response]):
    """Counts init() calls; fails the first init to show it is retried."""

    def __init__(self) -> None:
        self.inits = 0

    Request = Request
    Response = Response

    async def init(self) -> None:
        self.inits += 1
        if self.inits == 1:
            raise ConnectionFailed("server not up yet")

    async def run(self, request: Request, context: ActionContext) -> Response:
        return Response()


async def test_plugin_init_runs_once_before_first_use_and_is_retried_after_failure(
    engine: Engine, registry: PluginRegistry, wf: Any
) -> None:
    registry.register("test.init", NeedsInit)
    w = wf(
        {
            "a": {
                "do": [{"plugin": "test.init"}, {"plugin": "test.init"}],
                "retry": {"attempts": 2, "delay": "1ms"},
                "next": "done",
            },
            **END,
        }
    )
    assert (await engine.run(w)).ok
    assert (await engine.run(w)).ok
    assert registry.instance("test.init").inits == 2


async def test_a_finished_run_is_freed_without_the_garbage_collector(
    registry: PluginRegistry, wf: Any
) -> None:
    # a cycle (the run's context and its child runner) would keep the engine, its journal and
    # everything the run held alive until the collector's next full pass
    w = wf({"work": {"do": [{"plugin": "test.echo", "with": {"value": 1}}], "next": "done"}, **END})
    gc.disable()
    try:
        journal = MemoryJournal()
        engine = Engine(registry, journal=journal)
        result = await engine.run(w)
        assert result.ok
        gone = weakref.ref(engine), weakref.ref(journal)
        del engine, journal, result
        assert [ref() for ref in gone] == [None, None]
    finally:
        gc.enable()
