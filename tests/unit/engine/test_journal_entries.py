"""What the state loop journals, entry by entry: the contract its fast path must keep.

The runner builds entries without re-validating them, reuses the redacted outputs between
transitions that add none, and works out each state's transitions once per state object. These
tests pin down that none of that is visible: entries equal validated ones, every transition entry
carries the outputs (redacted) as they were at that moment, and decisions are made per run.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.engine import plans
from reconciler.engine.conditions import Exits, default_branch, match_success, racers
from reconciler.engine.journal import (
    JOURNAL_ENTRIES,
    RUN_RECORDS,
    EventKind,
    JournalEntry,
    MemoryJournal,
    RunStatus,
)
from reconciler.engine.runner import Engine
from reconciler.grants import Grants
from reconciler.plugin import PluginRegistry

END = {"done": {"end": "success"}, "failed": {"end": "failure"}}
SECRET = "s3cr3t-hot-path-canary"


def test_an_entry_built_unvalidated_round_trips_through_the_adapter() -> None:
    detail = {"condition": "default", "outputs": {"a": {"value": 1}}}
    entry = JournalEntry(
        run_id="run-1",
        seq=7,
        kind=EventKind.TRANSITION,
        state="a",
        to_state="b",
        outcome="success",
        detail=detail,
    )
    assert entry.at.tzinfo is not None
    dumped = JOURNAL_ENTRIES.dump_python(entry, mode="json")
    assert dumped["kind"] == "transition" and dumped["detail"] == detail
    assert JOURNAL_ENTRIES.validate_python(dumped) == entry
    assert JOURNAL_ENTRIES.validate_json(JOURNAL_ENTRIES.dump_json(entry)) == entry


def test_the_adapters_refuse_what_a_record_does_not_have() -> None:
    with pytest.raises(ValidationError):
        JOURNAL_ENTRIES.validate_python({"run_id": "r", "seq": 1, "kind": "action", "extra": 1})
    with pytest.raises(ValidationError):
        RUN_RECORDS.validate_python({"id": "r", "workflow": "wf", "status": "sleeping"})
    run = RUN_RECORDS.validate_python({"id": "r", "workflow": "wf", "status": "failed"})
    assert run.status is RunStatus.FAILED and run.outputs == {} and run.attempt == 1


async def test_every_journaled_entry_is_a_valid_journal_entry(
    engine: Engine, journal: MemoryJournal, wf: Any
) -> None:
    w = wf(
        {
            "a": {
                "action": {"plugin": "test.echo", "with": {"value": 1}, "as": "one"},
                "next": "b",
            },
            "b": {"transitions": [{"to": "done", "when": "outputs.one.value == 1"}]},
            **END,
        }
    )
    result = await engine.run(w)
    assert result.ok, result.error
    log = await journal.entries(result.run.id)
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    for entry in log:
        assert JOURNAL_ENTRIES.validate_python(JOURNAL_ENTRIES.dump_python(entry)) == entry


async def test_each_transition_carries_the_outputs_as_they_were_then(
    engine: Engine, journal: MemoryJournal, wf: Any
) -> None:
    w = wf(
        {
            "a": {
                "action": {"plugin": "test.echo", "with": {"value": 1}, "as": "first"},
                "next": "route",
            },
            "route": {"transitions": [{"to": "b"}]},
            "b": {
                "action": {"plugin": "test.echo", "with": {"value": 2}, "as": "second"},
                "next": "done",
            },
            **END,
        }
    )
    result = await engine.run(w)
    assert result.ok, result.error
    moves = [e for e in await journal.entries(result.run.id) if e.kind is EventKind.TRANSITION]
    assert [(e.state, e.to_state) for e in moves] == [("a", "route"), ("route", "b"), ("b", "done")]
    first = {"changed": False, "value": 1}
    second = {"changed": False, "value": 2}
    assert [e.detail["outputs"] for e in moves] == [
        {"first": first},
        {"first": first},
        {"first": first, "second": second},
    ]
    assert result.outputs == {"first": first, "second": second}


async def test_outputs_holding_a_secret_are_masked_in_every_transition(
    registry: PluginRegistry,
    journal: MemoryJournal,
    wf: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("RECONCILER_HOT_PATH_SECRET", SECRET)
    grants = Grants.local(tmp_path, allow_env=["RECONCILER_HOT_PATH_SECRET"])
    engine = Engine(registry, journal=journal, workdir=tmp_path, grants=grants)
    w = wf(
        {
            "a": {
                "action": {
                    "plugin": "test.echo",
                    "with": {"value": "token ${{ secrets.pw }}"},
                    "as": "said",
                },
                "next": "r1",
            },
            "r1": {"transitions": [{"to": "r2"}]},
            "r2": {"transitions": [{"to": "done"}]},
            **END,
        },
        secrets={"pw": "env:RECONCILER_HOT_PATH_SECRET"},
    )
    result = await engine.run(w)
    assert result.ok, result.error
    log = await journal.entries(result.run.id)
    moves = [e for e in log if e.kind is EventKind.TRANSITION]
    assert len(moves) == 3
    for entry in moves:
        assert entry.detail["outputs"] == {"said": {"changed": False, "value": "token ***"}}
    assert SECRET not in repr(log)
    assert SECRET not in repr(result.outputs) and SECRET not in repr(result.run)


async def test_one_workflow_decides_afresh_in_every_run_of_every_engine(
    registry: PluginRegistry, wf: Any
) -> None:
    w = wf(
        {
            "choose": {
                "transitions": [
                    {"to": "done", "when": "inputs.go"},
                    {"to": "failed"},
                ]
            },
            **END,
        },
        inputs={"go": True},
    )
    first = Engine(registry, journal=MemoryJournal())
    second = Engine(registry, journal=MemoryJournal())
    assert (await first.run(w)).path == ["choose", "done"]
    assert (await second.run(w, inputs={"go": False})).path == ["choose", "failed"]
    assert (await first.run(w, inputs={"go": False})).end == "failure"
    assert (await second.run(w)).end == "success"


async def test_what_the_runner_learnt_about_a_workflow_goes_with_it(
    engine: Engine, wf: Any
) -> None:
    w = wf({"a": {"transitions": [{"to": "b"}]}, "b": {"transitions": [{"to": "done"}]}, **END})
    assert (await engine.run(w)).ok
    key = id(w)
    assert key in plans._PLANS
    del w
    gc.collect()
    assert key not in plans._PLANS


async def test_with_templates_see_the_attempt_of_each_retry_and_plain_values_pass_through(
    engine: Engine, registry: PluginRegistry, journal: MemoryJournal, wf: Any
) -> None:
    w = wf(
        {
            "a": {
                "do": [
                    {
                        "plugin": "test.fail",
                        "with": {
                            "error": "ConnectionFailed",
                            "times": 2,
                            "message": "try ${{ run.attempt }} of ${{ run.workflow }}",
                        },
                    },
                    {"plugin": "test.echo", "with": {"value": {"plain": ["text", 1]}}},
                    {"plugin": "test.echo", "with": {"value": "${{ run.attempt }}"}},
                ],
                "retry": {"attempts": 3, "delay": "1ms"},
                "next": "done",
            },
            **END,
        }
    )
    result = await engine.run(w)
    assert result.ok, result.error
    actions = [e for e in await journal.entries(result.run.id) if e.kind is EventKind.ACTION]
    assert [e.detail.get("error", {}).get("message") for e in actions[:2]] == [
        "try 1 of wf",
        "try 2 of wf",
    ]
    assert [c["attempt"] for c in registry.instance("test.fail").calls] == [1, 2, 3]
    assert [c["value"] for c in registry.instance("test.echo").calls] == [
        {"plain": ["text", 1]},
        1,
    ]


def test_a_states_exits_sorted_once_agree_with_the_one_by_one_rules(wf: Any) -> None:
    w = wf(
        {
            "a": {
                "transitions": [
                    {"to": "done", "on": "Timeout"},
                    {"to": "b", "when": "inputs.x == 1"},
                    {"to": "done", "after": "1s"},
                    {"to": "b"},
                    {"to": "done", "on": ["error", "success"]},
                    {"to": "failed", "when": "true"},
                    {"to": "failed", "poll": {"plugin": "test.health", "until": "true"}},
                    {"to": "failed"},
                    {"to": "b", "on": "success"},
                ]
            },
            "b": {"next": "done"},
            **END,
        }
    )
    transitions = w.spec.states["a"].transitions
    exits = Exits.of(transitions)
    assert exits.success is match_success(transitions) is transitions[4]
    assert exits.choices == tuple(t for t in transitions if t.kind == "when")
    assert list(exits.racers) == racers(transitions) == [transitions[2], transitions[6]]
    assert exits.default is default_branch(transitions) is transitions[3]
