"""The command log: every request the API accepts, committed before it is answered.

Why it exists: a manual sync answered ``202`` used to live only in the answering process's
queue, so a ``kill -9`` lost it, and with replicas a suspend or cancel reached only the
replica that answered. Now the API's controller writes a row here (and, for a suspend or
resume, the status row's ``suspended`` flag in the same transaction) before answering; every
replica's controller reads the rows in ``id`` order (``reconciler/daemon/commands.py``) and
applies those that concern it.

What callers may rely on: a command returned by :func:`record` is committed; ``id`` grows in
commit order *almost* always (a PostgreSQL sequence value is taken before the commit, so two
concurrent requests may commit out of order: readers look back a little, see
:data:`~reconciler.daemon.commands.LOOKBACK`); a sync stays unhandled until the manual run it
causes starts (:func:`answer_syncs`, in the run's own ``run_started`` transaction) or a
controller decided, under the workflow's lease, that nothing runs. A sync with run inputs
(``payload={"inputs": {...}}``) is answered only by a manual run started with exactly those
inputs; a plain sync only by a manual run started with none.

Called by: :class:`reconciler.store.store.Store` (each function runs inside one of its
transactions) and the retention pass (:func:`prune`). Calls: SQLAlchemy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.status import SUSPENDED_MANUALLY, SUSPENDED_MESSAGE, Health
from reconciler.store.records import Command, CommandKind
from reconciler.store.tables import COMMANDS, WORKFLOW_STATUS

HANDLED_KEPT = timedelta(days=1)
"""How long a handled command is kept (for inspection) before the retention pass drops it."""
UNHANDLED_KEPT = timedelta(days=7)
"""How long a command nobody could handle (its workflow gone from every replica) is kept."""
RESUMED_MESSAGE = "resumed through the API"
SYNC_RUN_REASON = "manual"
"""The reason of the run a sync causes (the planner's ``RunReason.MANUAL``): only such a run
answers a sync; a run for another reason that starts meanwhile leaves it to be run after."""


def _command(row: RowMapping) -> Command:
    return Command(
        id=row["id"],
        kind=CommandKind(row["kind"]),
        target=row["target"],
        requested_at=row["requested_at"],
        requested_by=row["requested_by"],
        handled_at=row["handled_at"],
        payload=row["payload"],
    )


async def record(
    conn: AsyncConnection,
    kind: CommandKind,
    *,
    target: str,
    requested_by: str,
    now: datetime,
    handled: bool = False,
    payload: dict[str, Any] | None = None,
) -> Command:
    """Insert one command; ``handled`` when its effect is written in the same transaction."""
    handled_at = now if handled else None
    values = {
        "kind": kind.value,
        "target": target,
        "requested_at": now,
        "requested_by": requested_by,
        "handled_at": handled_at,
        "payload": payload,
    }
    result = await conn.execute(insert(COMMANDS).values(values).returning(COMMANDS.c.id))
    return Command(
        id=int(result.scalar_one()),
        kind=kind,
        target=target,
        requested_at=now,
        requested_by=requested_by,
        handled_at=handled_at,
        payload=payload,
    )


async def set_suspended(
    conn: AsyncConnection, name: str, *, suspended: bool, now: datetime
) -> None:
    """Set or clear workflow ``name``'s suspension in its status row (created when missing, for
    a suspend). Clearing a row that is not suspended changes nothing."""
    table = WORKFLOW_STATUS
    if suspended:
        changes = {
            "suspended": True,
            "status": Health.SUSPENDED.value,
            "reason": SUSPENDED_MANUALLY,
            "message": SUSPENDED_MESSAGE,
            "updated_at": now,
        }
        done = await conn.execute(update(table).where(table.c.name == name).values(changes))
        if not done.rowcount:
            await conn.execute(
                insert(table).values(name=name, sync="Unknown", failures=0, **changes)
            )
        return
    await conn.execute(
        update(table)
        .where(table.c.name == name, table.c.suspended.is_(True))
        .values(
            suspended=False,
            status=Health.PENDING.value,
            reason="",
            message=RESUMED_MESSAGE,
            updated_at=now,
        )
    )


async def after(conn: AsyncConnection, after_id: int, *, limit: int) -> list[Command]:
    """Commands with an id above ``after_id``, oldest first, at most ``limit``."""
    rows = (
        (
            await conn.execute(
                select(COMMANDS)
                .where(COMMANDS.c.id > after_id)
                .order_by(COMMANDS.c.id)
                .limit(limit)
            )
        )
        .mappings()
        .all()
    )
    return [_command(r) for r in rows]


async def unhandled(
    conn: AsyncConnection, kind: CommandKind, *, target: str | None = None
) -> list[Command]:
    """The commands of ``kind`` (of ``target`` only, when given) not handled yet, oldest first."""
    query = select(COMMANDS).where(COMMANDS.c.kind == kind.value, COMMANDS.c.handled_at.is_(None))
    if target is not None:
        query = query.where(COMMANDS.c.target == target)
    rows = (await conn.execute(query.order_by(COMMANDS.c.id))).mappings().all()
    return [_command(r) for r in rows]


async def of_target(conn: AsyncConnection, kind: CommandKind, *, target: str) -> list[Command]:
    """Every command of ``kind`` for ``target``, handled or not, oldest first."""
    query = select(COMMANDS).where(COMMANDS.c.kind == kind.value, COMMANDS.c.target == target)
    rows = (await conn.execute(query.order_by(COMMANDS.c.id))).mappings().all()
    return [_command(r) for r in rows]


async def last_id(conn: AsyncConnection) -> int:
    """The highest command id so far (0 when there is none)."""
    found = (
        await conn.execute(select(COMMANDS.c.id).order_by(COMMANDS.c.id.desc()).limit(1))
    ).scalar()
    return int(found or 0)


async def mark_handled(conn: AsyncConnection, ids: Sequence[int], *, now: datetime) -> int:
    """Mark the commands ``ids`` handled (those not handled yet); returns how many changed."""
    if not ids:
        return 0
    result = await conn.execute(
        update(COMMANDS)
        .where(COMMANDS.c.id.in_(list(ids)), COMMANDS.c.handled_at.is_(None))
        .values(handled_at=now)
    )
    return int(result.rowcount or 0)


async def settle_syncs(conn: AsyncConnection, workflow: str, *, now: datetime) -> int:
    """Mark every unhandled sync of ``workflow`` handled: a manual run starting now answers all
    of them. Returns how many there were."""
    result = await conn.execute(
        update(COMMANDS)
        .where(
            COMMANDS.c.kind == CommandKind.SYNC.value,
            COMMANDS.c.target == workflow,
            COMMANDS.c.handled_at.is_(None),
        )
        .values(handled_at=now)
    )
    return int(result.rowcount or 0)


def sync_inputs(command: Command) -> dict[str, Any]:
    """The run inputs a sync carries (``{}`` for a plain sync)."""
    payload = command.payload or {}
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    return dict(inputs) if isinstance(inputs, dict) else {}


async def answer_syncs(
    conn: AsyncConnection, workflow: str, *, inputs: dict[str, Any] | None, now: datetime
) -> list[str]:
    """Mark handled the unhandled syncs of ``workflow`` that a manual run started with
    ``inputs`` answers: those carrying exactly these inputs (no inputs: the plain syncs).
    Returns who asked for them, each name once, oldest first."""
    wanted = dict(inputs or {})
    pending = await unhandled(conn, CommandKind.SYNC, target=workflow)
    answered = [c for c in pending if sync_inputs(c) == wanted]
    await mark_handled(conn, [c.id for c in answered], now=now)
    return list(dict.fromkeys(c.requested_by for c in answered if c.requested_by))


async def prune(conn: AsyncConnection, *, now: datetime) -> int:
    """Drop handled commands older than :data:`HANDLED_KEPT` and any older than
    :data:`UNHANDLED_KEPT`; returns how many went."""
    result = await conn.execute(
        delete(COMMANDS).where(
            (COMMANDS.c.handled_at < now - HANDLED_KEPT)
            | (COMMANDS.c.requested_at < now - UNHANDLED_KEPT)
        )
    )
    return int(result.rowcount or 0)
