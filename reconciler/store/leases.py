"""Leases with fencing tokens: how several replicas sharing one database split the work.

A replica (``reconciler/daemon``) calls :meth:`Store.acquire` for a name (a workflow, or
"leader"), keeps it with :meth:`Store.renew` well before ``expires_at``, and passes the
:class:`Lease` as ``fence=`` to the journal writes it makes on the lease's behalf. Any other owner
may take the lease over once it has expired; every new acquisition increments the row's
``fencing_token`` (rows are never deleted, so tokens only grow), and a write fenced by an older
token is refused with :class:`LeaseLost` — a paused replica that wakes up after losing its lease
cannot overwrite the new owner's journal.

Everything here is a single conditional ``INSERT``/``UPDATE`` inside the caller's transaction,
which is atomic on PostgreSQL (row locks; a takeover waits for an in-flight fenced write to
commit) and on SQLite (one writer at a time). Times are the caller's clock (``now``), so tests and
replicas with a common time source agree; keep TTLs large compared with clock skew.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import Insert, Update, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.errors import LeaseLost
from reconciler.store.records import Lease
from reconciler.store.tables import LEASES, LeaseRow


def as_timedelta(ttl: timedelta | float) -> timedelta:
    """A TTL given as seconds or as a timedelta; must be positive."""
    delta = ttl if isinstance(ttl, timedelta) else timedelta(seconds=float(ttl))
    if delta <= timedelta(0):
        raise ValueError(f"a lease TTL must be positive, got {delta}")
    return delta


async def acquire(
    conn: AsyncConnection, name: str, owner: str, *, ttl: timedelta, now: datetime
) -> Lease | None:
    """Take ``name`` for ``owner`` if it is free, expired, or already ``owner``'s.

    A fresh or taken-over lease gets a new, larger fencing token; an owner re-acquiring a lease
    it still holds only extends it and keeps its token.
    """
    expires = now + ttl
    dialect = conn.dialect.name
    values = {
        "name": name,
        "owner": owner,
        "expires_at": expires,
        "fencing_token": 1,
        "acquired_at": now,
    }
    fresh: Insert
    if dialect == "postgresql":
        fresh = postgresql.insert(LEASES).values(values).on_conflict_do_nothing()
    else:
        fresh = sqlite.insert(LEASES).values(values).on_conflict_do_nothing()
    if (await conn.execute(fresh)).rowcount == 1:
        return Lease(
            name=name,
            owner=owner,
            fencing_token=1,
            expires_at=expires,
            ttl_seconds=ttl.total_seconds(),
        )

    takeover = (
        update(LeaseRow)
        .where(LeaseRow.name == name, LeaseRow.expires_at <= now)
        .values(
            owner=owner,
            expires_at=expires,
            acquired_at=now,
            fencing_token=LeaseRow.fencing_token + 1,
        )
        .returning(LeaseRow.fencing_token)
    )
    token = (await conn.execute(takeover)).scalar_one_or_none()
    if token is None:
        extend = (
            update(LeaseRow)
            .where(LeaseRow.name == name, LeaseRow.owner == owner, LeaseRow.expires_at > now)
            .values(expires_at=expires)
            .returning(LeaseRow.fencing_token)
        )
        token = (await conn.execute(extend)).scalar_one_or_none()
    if token is None:
        return None
    return Lease(
        name=name,
        owner=owner,
        fencing_token=int(token),
        expires_at=expires,
        ttl_seconds=ttl.total_seconds(),
    )


async def renew(conn: AsyncConnection, lease: Lease, *, now: datetime) -> bool:
    """Extend ``lease`` by its TTL from ``now`` if its token is still current.

    An expired lease that nobody took over is still current (its token never moved), so a late
    renewal succeeds; once another owner acquired it, renewal fails for good.
    """
    expires = now + timedelta(seconds=lease.ttl_seconds)
    if not await _expire_at(conn, lease, expires):
        return False
    lease.expires_at = expires
    return True


async def release(conn: AsyncConnection, lease: Lease, *, now: datetime) -> bool:
    """Give ``lease`` up (it expires at ``now``); the row and its token stay. False if it was
    already lost."""
    return await _expire_at(conn, lease, now)


async def _expire_at(conn: AsyncConnection, lease: Lease, when: datetime) -> bool:
    """Move the expiry of ``lease`` to ``when`` if it is still this owner's, at this token."""
    stmt = (
        update(LeaseRow)
        .where(
            LeaseRow.name == lease.name,
            LeaseRow.owner == lease.owner,
            LeaseRow.fencing_token == lease.fencing_token,
        )
        .values(expires_at=when)
    )
    return bool((await conn.execute(stmt)).rowcount == 1)


def lost(lease: Lease) -> LeaseLost:
    """The error for a write refused because ``lease`` is no longer current."""
    return LeaseLost(
        f"lease {lease.name!r} (token {lease.fencing_token}) is no longer held by "
        f"{lease.owner!r}; the write was refused"
    )


def held_statement(lease: Lease) -> Update:
    """The check that ``lease`` is still the current holder: a no-op ``UPDATE`` of its row that
    matches one row while it is (``rowcount == 1``), and locks the row (PostgreSQL) until the
    surrounding transaction commits, so a concurrent takeover waits for the fenced write to
    commit instead of slipping in between. The store's writer runs it on its own connection."""
    return (
        update(LeaseRow)
        .where(
            LeaseRow.name == lease.name,
            LeaseRow.owner == lease.owner,
            LeaseRow.fencing_token == lease.fencing_token,
        )
        .values(fencing_token=LeaseRow.fencing_token)
    )


async def _still_held(conn: AsyncConnection, lease: Lease) -> bool:
    """Whether ``lease`` is still the current holder; locks its row (PostgreSQL) until commit
    (:func:`held_statement`)."""
    return bool((await conn.execute(held_statement(lease))).rowcount == 1)


async def check_fence(conn: AsyncConnection, lease: Lease) -> None:
    """Refuse the surrounding write with :class:`LeaseLost` unless ``lease`` is still the
    current holder (and hold its row lock until the write commits)."""
    if not await _still_held(conn, lease):
        raise lost(lease)


async def refused_fences(
    conn: AsyncConnection, fences: Mapping[str, Lease], *, names: Iterable[str]
) -> set[str]:
    """For a batch of writes keyed by ``names`` (workflows) in the caller's transaction: the
    names whose lease in ``fences`` is no longer current, whose writes must be left out. Names
    without a fence are never refused. Rows are checked (and locked) in lease-name order, so
    two replicas' batches cannot deadlock on each other's lease rows."""
    wanted = sorted(
        ((fences[name], name) for name in set(names) if fences.get(name) is not None),
        key=lambda pair: (pair[0].name, pair[1]),
    )
    refused: set[str] = set()
    for lease, name in wanted:
        if not await _still_held(conn, lease):
            refused.add(name)
    return refused
