"""Approval gates: a run that waits for a person to say yes or no.

A transition with ``approval:`` races the state's other conditions (``after``, ``poll``,
``subscribe``, the state's timeout). While it waits, the run's journal holds an
``approval_requested`` entry; a decision ends the wait with an ``approval_decided`` entry (who,
when, the comment): an approval takes the transition, a rejection fails the state with
:class:`~reconciler.errors.ApprovalRejected`, routed by ``on:`` like any other error.

The engine knows nothing of where decisions come from: it asks an :class:`ApprovalDesk`. The
daemon's desk (``reconciler/daemon/approvals.py``) takes them from the store's command log, so a
decision given while the daemon was down, or on another replica, reaches the run when it
resumes; :mod:`reconciler.testing` has one that answers from a list (``approvals:`` in a
workflow's inline tests); without a desk the gate fails with
:class:`~reconciler.errors.ApprovalUnavailable`.

Called by: :mod:`reconciler.engine.conditions` (the race). :func:`pending_approval` is also what
the API and the page use to tell whether a run is waiting, from its journal alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.config.expressions import render_async
from reconciler.config.models import Approval
from reconciler.engine.journal import EventKind, JournalEntry
from reconciler.errors import ApprovalRejected, ApprovalUnavailable

if TYPE_CHECKING:
    from reconciler.engine.actions import RunContext


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """What a run waits for: a decision on ``run_id`` while it is in ``state``. ``visit`` is the
    journal ``seq`` after which this visit of the state began (see :class:`PendingApproval`): a
    decision given for a request at or before it was meant for an earlier visit."""

    run_id: str
    workflow: str
    state: str
    message: str
    visit: int = 0
    revision: str = ""


@dataclass(frozen=True, slots=True)
class ApprovalDecision:
    """A person's answer: ``approved`` or not, ``by`` whom (the API token's name), ``comment``
    (possibly empty) and ``at`` (when it was given)."""

    approved: bool
    by: str
    comment: str
    at: datetime


class ApprovalDesk(Protocol):
    """Where a run waiting at an approval gate gets its decision."""

    async def decision(self, request: ApprovalRequest) -> ApprovalDecision:
        """Wait until someone decides ``request`` and return the decision.

        May wait forever; the caller cancels the wait when another condition fires first. A
        decision returned here is consumed: it is not returned for a later request.
        """
        ...


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """A run's open approval request, as its journal says: the state it waits in, the message,
    who may decide (empty: anyone allowed to operate), whether the run's requester is excluded,
    when it was asked, the ``seq`` of its ``approval_requested`` entry, and ``visit``: the
    ``seq`` of the run's last ``transition`` entry before it (0 if none). A decision names the
    request's ``seq``; the run takes it while it is still in that visit (a resumed run writes a
    new request in the same visit), never in a later one."""

    state: str
    message: str
    approvers: tuple[str, ...]
    separate_requester: bool
    requested_at: datetime
    seq: int
    visit: int


def pending_approval(entries: Sequence[JournalEntry]) -> PendingApproval | None:
    """The approval ``entries`` (a run's journal, in order) still wait for, if any: the last
    ``approval_requested`` entry with no decision, transition or finish after it."""
    for at, entry in enumerate(reversed(entries)):
        kind = entry.kind
        if kind == EventKind.APPROVAL_REQUESTED:
            detail = entry.detail
            before = entries[: len(entries) - at]
            visit = next((e.seq for e in reversed(before) if e.kind == EventKind.TRANSITION), 0)
            return PendingApproval(
                state=entry.state or "",
                message=str(detail.get("message", "")),
                approvers=tuple(str(a) for a in detail.get("approvers", ())),
                separate_requester=bool(detail.get("separateRequester", False)),
                requested_at=entry.at,
                seq=entry.seq,
                visit=visit,
            )
        if kind in _ENDS_A_REQUEST:
            return None
    return None


MAX_MESSAGE = 2000
"""The longest rendered ``message`` kept (cut with an ellipsis): a template over a big output
must not put megabytes into the journal, the API and the page."""

_ENDS_A_REQUEST = frozenset(
    {EventKind.APPROVAL_DECIDED, EventKind.TRANSITION, EventKind.RUN_FINISHED}
)


async def wait_for_approval(ctx: RunContext, approval: Approval, *, state: str) -> None:
    """Journal the request, wait for the decision, journal it; return on an approval, raise
    :class:`ApprovalRejected` on a rejection (:class:`ApprovalUnavailable` without a desk)."""
    desk = ctx.approvals
    if desk is None:
        raise ApprovalUnavailable(
            f"state {state!r} waits for an approval, and only the daemon takes approvals"
        )
    message = ""
    if approval.message:
        rendered = await render_async(approval.message, ctx.scope(), cost_limit=ctx.cost_limit)
        message = ctx.redactor.redact(str(rendered))
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 1] + "…"
    request = ApprovalRequest(
        run_id=ctx.record.id,
        workflow=ctx.record.workflow,
        state=state,
        message=message,
        visit=ctx.visit,
        revision=ctx.record.revision,
    )
    await ctx.write(
        EventKind.APPROVAL_REQUESTED,
        state=state,
        detail={
            "message": message,
            "approvers": list(approval.approvers),
            "separateRequester": approval.separate_requester,
        },
    )
    ctx.logger.info("waiting for approval", state=state)
    decision = await desk.decision(request)
    verdict = "approved" if decision.approved else "rejected"
    detail: dict[str, Any] = {
        "verdict": verdict,
        "by": decision.by,
        "comment": decision.comment,
        "decidedAt": decision.at.isoformat(),
    }
    await ctx.write(EventKind.APPROVAL_DECIDED, state=state, outcome=verdict, detail=detail)
    ctx.logger.info("approval decided", state=state, verdict=verdict, by=decision.by)
    if not decision.approved:
        why = f": {ctx.redactor.redact(decision.comment)}" if decision.comment else ""
        raise ApprovalRejected(
            f"rejected by {decision.by} in state {state!r}{why}",
            details={"by": decision.by, "comment": ctx.redactor.redact(decision.comment)},
        )
