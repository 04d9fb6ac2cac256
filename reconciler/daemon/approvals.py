"""Approval decisions in the daemon: from the API, through the command log, to the waiting run.

A run waiting at an ``approval`` gate asks the engine's :class:`ApprovalDesk`; in the daemon that
is the :class:`ApprovalInbox`. An approve or reject the API accepts is recorded in the store's
command log first (``approve`` commands, the run id as target, the verdict, comment and state in
the payload, the token's name as ``requested_by``), and only then answered ``202``. The run gets
it by either of two paths, whichever comes first:

- when it starts waiting (also after a restart, or on the replica that took the run over), the
  inbox reads the unhandled ``approve`` commands of the run from the store: a decision given while
  the daemon was down, or through another replica, is found there;
- while it waits, the command reader (``daemon/commands.py``) hands every new ``approve``
  command it reads to :meth:`ApprovalInbox.deliver`, and the controller that recorded one hands
  it over at once.

A decision names the request it answers (the ``seq`` of the run's ``approval_requested`` entry)
and is taken only during that visit of the state (a resumed run asks again in the same visit:
the decision still counts; a loop back to the state is a new visit: it does not). When a run
takes a decision, every decision given for the same visit is marked handled with it (two people
pressing the button at once: the first recorded wins); one found for an earlier visit (given
just as the wait ended another way) is marked handled unused. A wait that is cancelled (a
timeout, an ``after``, a shutdown) leaves the store as it is: after a restart the run finds
the decision there.

Who may decide is checked before anything is recorded, by :func:`refusal`: the run must be
waiting (its journal says so, see :func:`~reconciler.engine.approvals.pending_approval`), the
token must be one of the gate's ``approvers`` when it names some, and with
``separateRequester`` not the token whose sync started the run (for a ``workflow.run`` child,
the top-level run: :func:`top_level`).

Called by: the engine (through :class:`ApprovalDesk`), the controller (:meth:`ApprovalInbox.deliver`
after recording) and the command reader. Calls: the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from reconciler.engine.approvals import ApprovalDecision, ApprovalRequest, PendingApproval
from reconciler.engine.journal import RunRecord, RunStatus
from reconciler.errors import StoreError
from reconciler.store import Command, CommandKind, Store
from reconciler.telemetry.metrics import RUNS_AWAITING_APPROVAL

log = structlog.get_logger("reconciler.daemon")

APPROVE = "approve"
REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a decision is not taken: ``code`` for the API (``not_running``,
    ``not_awaiting_approval``, ``request_changed``, ``not_an_approver``,
    ``requester_cannot_approve``, ``already_decided``) and a sentence for people."""

    code: str
    message: str


def refusal(
    run: RunRecord,
    pending: PendingApproval | None,
    *,
    who: str,
    decided: Sequence[Command] = (),
    top: RunRecord | None = None,
    seen: int | None = None,
) -> Refusal | None:
    """Whether ``who`` (an API token's name) may approve or reject ``run`` now; ``None`` if so.

    ``pending`` is the run's open request (from its journal), ``decided`` the decisions already
    recorded for the run (taken by it or not), ``top`` the top-level run ``run`` is a child of
    (:func:`top_level`; ``run`` itself when ``None``): whoever asked for that run asked for its
    children too, so ``separateRequester`` keeps them from deciding a child's gate. ``seen``
    is the request the decider read (an ``approval_requested`` ``seq``), when they say: it must
    belong to the visit the run waits in now (a resumed run asking again in the same visit
    still counts), else the run has moved on to another question since.
    """
    if run.status is not RunStatus.RUNNING:
        return Refusal("not_running", f"run {run.id} already {run.status.value}")
    if pending is None:
        return Refusal("not_awaiting_approval", f"run {run.id} is not waiting for an approval")
    if seen is not None and not pending.visit < seen <= pending.seq:
        return Refusal(
            "request_changed",
            f"run {run.id} no longer waits for the approval request {seen} that was read: it "
            f"now asks in state {pending.state!r} (request {pending.seq}); read it and decide "
            "again",
        )
    if pending.approvers and who not in pending.approvers:
        allowed = ", ".join(pending.approvers)
        return Refusal(
            "not_an_approver",
            f"token {who!r} may not decide state {pending.state!r} of run {run.id}: "
            f"its approvers are {allowed}",
        )
    asked = {run.requested_by, (top or run).requested_by}
    requesters = [r for names in asked for r in (names or "").split(",") if r]
    if pending.separate_requester and who in requesters:
        return Refusal(
            "requester_cannot_approve",
            f"token {who!r} asked for run {run.id} and state {pending.state!r} wants someone "
            "else to decide",
        )
    for command in decided:
        if for_visit(command, state=pending.state, visit=pending.visit):
            return Refusal(
                "already_decided",
                f"run {run.id} was already {verdict_of(command)}d by {command.requested_by}; "
                "the run takes it at once",
            )
    return None


MAX_ANCESTORS = 64
"""How many parents :func:`top_level` follows at most (``workflow.run`` nests far fewer)."""


async def top_level(store: Store, run: RunRecord) -> RunRecord:
    """The run at the top of ``run``'s ``workflow.run`` chain (``run`` itself when it has no
    parent; the last one found when a parent is no longer stored)."""
    top = run
    for _ in range(MAX_ANCESTORS):
        if top.parent_id is None:
            break
        parent = await store.get_run(top.parent_id)
        if parent is None:
            break
        top = parent
    return top


def payload(*, approved: bool, comment: str, pending: PendingApproval) -> dict[str, Any]:
    """The command log payload of a decision on ``pending``."""
    return {
        "verdict": APPROVE if approved else REJECT,
        "comment": comment,
        "state": pending.state,
        "requestSeq": pending.seq,
    }


def for_visit(command: Command, *, state: str, visit: int) -> bool:
    """Whether ``command`` answers a request made in ``state`` after journal ``seq`` ``visit``."""
    found = command.payload or {}
    seq = found.get("requestSeq")
    return found.get("state") == state and isinstance(seq, int) and seq > visit


def verdict_of(command: Command) -> str:
    return APPROVE if (command.payload or {}).get("verdict") == APPROVE else REJECT


def decision_of(command: Command) -> ApprovalDecision:
    comment = (command.payload or {}).get("comment")
    return ApprovalDecision(
        approved=verdict_of(command) == APPROVE,
        by=command.requested_by,
        comment=comment if isinstance(comment, str) else "",
        at=command.requested_at,
    )


class ApprovalInbox:
    """The daemon's :class:`~reconciler.engine.approvals.ApprovalDesk` (see the module docstring).

    ``retry`` is how long to wait before reading the store again when it failed;
    ``on_request`` is told of every request a run starts waiting for (the notifications), and
    must not block nor raise.
    """

    def __init__(
        self,
        store: Store,
        *,
        retry: float = 2.0,
        on_request: Callable[[ApprovalRequest], None] | None = None,
    ) -> None:
        self.store = store
        self.retry = retry
        self.on_request = on_request
        self._waiting: dict[str, tuple[ApprovalRequest, asyncio.Future[Command]]] = {}
        RUNS_AWAITING_APPROVAL.set_function(lambda: len(self._waiting))

    def waiting(self) -> dict[str, str]:
        """The runs waiting here, by id, with the state each waits in."""
        return {run_id: request.state for run_id, (request, _f) in self._waiting.items()}

    async def decision(self, request: ApprovalRequest) -> ApprovalDecision:
        future: asyncio.Future[Command] = asyncio.get_running_loop().create_future()
        self._waiting[request.run_id] = (request, future)
        if self.on_request is not None:
            self.on_request(request)
        try:
            taken = await self._recorded(request, future)
            if taken is None:
                taken = await future
        finally:
            self._waiting.pop(request.run_id, None)
        await self._settle(request)
        log.info(
            f"run {request.run_id[:8]} {verdict_of(taken)}d by {taken.requested_by} "
            f"in state {request.state}",
            workflow=request.workflow,
            run=request.run_id,
            state=request.state,
        )
        return decision_of(taken)

    def deliver(self, command: Command) -> bool:
        """Hand a newly recorded ``approve`` command to the run it is for, if that run waits here
        in the visit it was given for; True when it did."""
        waiting = self._waiting.get(command.target)
        if waiting is None or command.kind is not CommandKind.APPROVE:
            return False
        request, future = waiting
        if future.done() or not for_visit(command, state=request.state, visit=request.visit):
            return False
        future.set_result(command)
        return True

    async def _recorded(
        self, request: ApprovalRequest, future: asyncio.Future[Command]
    ) -> Command | None:
        """The oldest decision already in the store for this wait; ``None`` when there is none
        yet. Retries while the store fails, unless a decision is delivered meanwhile."""
        while not future.done():
            try:
                found = await self.store.unhandled_commands(
                    CommandKind.APPROVE, target=request.run_id
                )
            except StoreError as exc:
                log.warning(
                    f"reading the approvals of run {request.run_id[:8]} failed: {exc}; retrying",
                    workflow=request.workflow,
                    run=request.run_id,
                    state=request.state,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(future), self.retry)
                continue
            return next(
                (c for c in found if for_visit(c, state=request.state, visit=request.visit)),
                None,
            )
        return None

    async def _settle(self, request: ApprovalRequest) -> None:
        """Mark handled every decision of the run recorded so far: the one taken, others given
        for the same wait, and late ones for earlier visits (none can be meant for a later
        request: the run has not asked again yet)."""
        try:
            found = await self.store.unhandled_commands(CommandKind.APPROVE, target=request.run_id)
            ids = [c.id for c in found]
            if ids:
                await self.store.commands_handled(ids)
        except StoreError as exc:
            log.warning(
                f"marking the approvals of run {request.run_id[:8]} handled failed: {exc}; "
                "the retention pass drops them",
                workflow=request.workflow,
                run=request.run_id,
                state=request.state,
            )
