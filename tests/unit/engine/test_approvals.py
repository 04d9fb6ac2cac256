"""Approval gates: a run waits for a person, and the decision routes like any other outcome.

The desk here is a real :class:`ApprovalDesk` implementation that hands out decisions the test
gives it at a moment of its choosing (an asyncio future per request), so each test can show what
the journal says while the run waits, and what happens when another condition fires first.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reconciler.clock import utcnow
from reconciler.config.models import Workflow
from reconciler.engine.approvals import (
    MAX_MESSAGE,
    ApprovalDecision,
    ApprovalRequest,
    pending_approval,
)
from reconciler.engine.journal import EventKind, MemoryJournal, RunStatus
from reconciler.engine.runner import Engine
from reconciler.plugin import PluginRegistry
from reconciler.testing import ScriptedApprovals, run_workflow
from tests.support.waiting import until_async

END = {"done": {"end": "success"}, "stopped": {"end": "failure"}, "late": {"end": "failure"}}
SAFETY = 10.0


class Desk:
    """Decisions handed out by the test: :meth:`decide` answers the request waiting."""

    def __init__(self) -> None:
        self.requests: list[ApprovalRequest] = []
        self._waiting: asyncio.Future[ApprovalDecision] | None = None
        self.withdrawn = 0

    async def decision(self, request: ApprovalRequest) -> ApprovalDecision:
        self.requests.append(request)
        self._waiting = asyncio.get_running_loop().create_future()
        try:
            return await self._waiting
        except asyncio.CancelledError:
            self.withdrawn += 1
            raise

    def decide(self, *, approved: bool, by: str = "alice", comment: str = "") -> None:
        assert self._waiting is not None, "nothing is waiting for a decision"
        self._waiting.set_result(
            ApprovalDecision(approved=approved, by=by, comment=comment, at=utcnow())
        )


def gated(wf: Any, *, after: str = "1h", **approval: Any) -> Workflow:
    return wf(
        {
            "ask": {
                "transitions": [
                    {"to": "done", "approval": approval},
                    {"to": "late", "after": after},
                    {"to": "stopped", "on": "ApprovalRejected"},
                ]
            },
            **END,
        },
        inputs={"db": "orders"},
    )


@pytest.fixture
def desk() -> Desk:
    return Desk()


@pytest.fixture
def gated_engine(registry: PluginRegistry, journal: MemoryJournal, desk: Desk) -> Engine:
    return Engine(registry, journal=journal, approvals=desk)


async def test_an_approval_takes_the_transition_and_the_journal_names_the_approver(
    gated_engine: Engine, desk: Desk, journal: MemoryJournal, wf: Any
) -> None:
    run = asyncio.create_task(
        gated_engine.run(gated(wf, message="Rotate the password of ${{ inputs.db }}?"))
    )
    await until_async(lambda: bool(desk.requests), SAFETY, "the run asks for approval")
    request = desk.requests[0]
    assert (request.state, request.message) == ("ask", "Rotate the password of orders?")
    waiting = pending_approval(await journal.entries(request.run_id))
    assert waiting is not None and waiting.state == "ask"
    assert waiting.message == "Rotate the password of orders?"

    desk.decide(approved=True, by="alice", comment="window agreed with the DBA")
    result = await asyncio.wait_for(run, SAFETY)

    assert result.ok and result.path == ["ask", "done"]
    entries = await journal.entries(result.run.id)
    decided = next(e for e in entries if e.kind is EventKind.APPROVAL_DECIDED)
    assert decided.outcome == "approved"
    assert decided.detail["by"] == "alice"
    assert decided.detail["comment"] == "window agreed with the DBA"
    transition = next(e for e in entries if e.kind is EventKind.TRANSITION)
    assert transition.detail["condition"] == "approval"
    assert pending_approval(entries) is None


async def test_a_rejection_routes_by_on_like_any_error(
    gated_engine: Engine, desk: Desk, journal: MemoryJournal, wf: Any
) -> None:
    run = asyncio.create_task(gated_engine.run(gated(wf)))
    await until_async(lambda: bool(desk.requests), SAFETY, "the run asks for approval")
    desk.decide(approved=False, by="bob", comment="not during the sale")
    result = await asyncio.wait_for(run, SAFETY)

    assert result.path == ["ask", "stopped"]
    entries = await journal.entries(result.run.id)
    transition = next(e for e in entries if e.kind is EventKind.TRANSITION)
    assert transition.outcome == "ApprovalRejected"
    decided = next(e for e in entries if e.kind is EventKind.APPROVAL_DECIDED)
    assert (decided.outcome, decided.detail["by"]) == ("rejected", "bob")


async def test_a_rejection_nobody_routes_fails_the_run_naming_who_rejected(
    registry: PluginRegistry, journal: MemoryJournal, desk: Desk, wf: Any
) -> None:
    w = wf({"ask": {"transitions": [{"to": "done", "approval": {}}]}, **END})
    engine = Engine(registry, journal=journal, approvals=desk)
    run = asyncio.create_task(engine.run(w))
    await until_async(lambda: bool(desk.requests), SAFETY, "the run asks for approval")
    desk.decide(approved=False, by="bob", comment="no")
    result = await asyncio.wait_for(run, SAFETY)

    assert result.run.status is RunStatus.FAILED
    assert result.error is not None and result.error.name == "ApprovalRejected"
    assert "rejected by bob" in (result.run.error or "")


async def test_an_after_that_fires_first_withdraws_the_request(
    gated_engine: Engine, desk: Desk, journal: MemoryJournal, wf: Any
) -> None:
    result = await asyncio.wait_for(gated_engine.run(gated(wf, after="20ms")), SAFETY)

    assert result.path == ["ask", "late"]
    assert desk.withdrawn == 1
    assert pending_approval(await journal.entries(result.run.id)) is None


async def test_the_state_timeout_ends_the_wait_as_a_timeout(
    gated_engine: Engine, desk: Desk, wf: Any
) -> None:
    w = wf(
        {
            "ask": {
                "timeout": "20ms",
                "transitions": [
                    {"to": "done", "approval": {}},
                    {"to": "late", "on": "Timeout"},
                ],
            },
            **END,
        }
    )
    result = await asyncio.wait_for(gated_engine.run(w), SAFETY)
    assert result.path == ["ask", "late"]
    assert desk.withdrawn == 1


async def test_without_a_desk_the_gate_fails_with_approval_unavailable(
    engine: Engine, wf: Any
) -> None:
    result = await asyncio.wait_for(engine.run(gated(wf)), SAFETY)
    assert result.error is not None and result.error.name == "ApprovalUnavailable"
    assert result.path == ["ask"]


async def test_a_secret_in_the_message_is_masked_in_the_request_and_journal(
    registry: PluginRegistry, journal: MemoryJournal, desk: Desk, wf: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("RECONCILER_SECRET_GATE", "s3cr3t-value-42")
    w = wf(
        {
            "show": {
                "action": {
                    "plugin": "test.echo",
                    "with": {"value": "${{ secrets.token }}"},
                    "as": "shown",
                },
                "next": "ask",
            },
            "ask": {
                "transitions": [
                    {"to": "done", "approval": {"message": "token is ${{ outputs.shown.value }}"}}
                ]
            },
            **END,
        },
        secrets={"token": "env:RECONCILER_SECRET_GATE"},
    )
    engine = Engine(registry, journal=journal, approvals=desk)
    run = asyncio.create_task(engine.run(w))
    await until_async(lambda: bool(desk.requests), SAFETY, "the run asks for approval")
    assert "s3cr3t" not in desk.requests[0].message
    desk.decide(approved=True)
    result = await asyncio.wait_for(run, SAFETY)
    assert result.ok
    for entry in await journal.entries(result.run.id):
        assert "s3cr3t-value-42" not in repr(entry.detail)


def test_inline_tests_script_the_decisions(wf: Any) -> None:
    approved = run_workflow(gated(wf), mocks={}, approvals=["approve"])
    rejected = run_workflow(gated(wf), mocks={}, approvals=["reject"])
    unanswered = run_workflow(gated(wf, after="10ms"), mocks={})
    assert approved.path == ["ask", "done"]
    assert rejected.path == ["ask", "stopped"]
    assert unanswered.path == ["ask", "late"]


def test_a_state_waits_for_one_approval_at_most(wf: Any) -> None:
    with pytest.raises(ValueError, match="one approval at most"):
        wf(
            {
                "ask": {
                    "transitions": [
                        {"to": "done", "approval": {}},
                        {"to": "late", "approval": {}},
                    ]
                },
                **END,
            }
        )


def test_a_transition_has_either_an_approval_or_another_condition(wf: Any) -> None:
    with pytest.raises(ValueError, match="one condition, found after, approval"):
        wf({"ask": {"transitions": [{"to": "done", "approval": {}, "after": "1m"}]}, **END})


async def test_a_long_message_is_cut_so_the_journal_stays_small(
    gated_engine: Engine, desk: Desk, wf: Any
) -> None:
    w = gated(wf, message="${{ inputs.db }}")
    run = asyncio.create_task(gated_engine.run(w, inputs={"db": "x" * 5000}))
    await until_async(lambda: bool(desk.requests), SAFETY, "the run asks for approval")
    message = desk.requests[0].message
    assert len(message) == MAX_MESSAGE and message.endswith("…")
    desk.decide(approved=True)
    assert (await asyncio.wait_for(run, SAFETY)).ok


async def test_a_desk_that_approves_everything_passes_every_gate(
    registry: PluginRegistry, journal: MemoryJournal, wf: Any
) -> None:
    twice = wf(
        {
            "first": {"transitions": [{"to": "second", "approval": {}}]},
            "second": {"transitions": [{"to": "done", "approval": {}}]},
            **END,
        }
    )
    desk = ScriptedApprovals(["approve"], then="approve")
    result = await asyncio.wait_for(
        Engine(registry, journal=journal, approvals=desk).run(twice), SAFETY
    )
    assert result.path == ["first", "second", "done"]
    assert [r.state for r in desk.asked] == ["first", "second"]
