"""Retention: pruning old runs and their journal so the store does not grow forever.

The daemon (``reconciler/daemon``) runs :func:`prune_periodically` in the background with the
``--keep-runs`` / ``--keep-days`` settings; :meth:`Store.prune` is the single pass it repeats.
It also prunes a workflow's runs right after each of its runs (``workflow=``), so that a
workflow running every few minutes never holds more than ``keep_runs`` runs between two passes.

Each setting is a limit, and a run is pruned when it breaks *any* configured limit: it is not
among the newest ``keep_runs`` runs of its workflow (counting every run, running ones included),
or it started more than ``keep_days`` days before ``now``. Whatever the limits, a run is never
pruned while it is still running, nor when a workflow's status row points at it
(``workflow_status.last_run_id``), so the status page can always show the last run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from reconciler.engine.journal import RunStatus
from reconciler.errors import StoreError
from reconciler.store.tables import JournalRow, RunRow, WorkflowStatusRow

log = structlog.get_logger("reconciler.store")

_CHUNK = 500


class Prunable(Protocol):
    """What :func:`prune_periodically` needs of the store: one pruning pass (:meth:`Store.prune`).

    A protocol rather than the ``Store`` class, so this module does not import the store module
    that imports it (:meth:`Store.prune` calls :func:`prune_runs`).
    """

    async def prune(self, keep_runs: int | None, keep_days: int | None) -> int: ...


async def prune_runs(
    conn: AsyncConnection,
    keep_runs: int | None,
    keep_days: int | None,
    *,
    now: datetime,
    workflow: str | None = None,
) -> int:
    """Delete the runs (and their journal) that break a limit; returns how many runs went.

    ``workflow``: only that workflow's runs (the daemon prunes a workflow after each of its runs).
    """
    if keep_runs is None and keep_days is None:  # nothing to enforce
        return 0
    if keep_runs is not None and keep_runs < 0:
        raise ValueError("keep_runs must be >= 0")
    if keep_days is not None and keep_days < 0:
        raise ValueError("keep_days must be >= 0")

    rank = (
        func.row_number()
        .over(partition_by=RunRow.workflow, order_by=(RunRow.started_at.desc(), RunRow.id.desc()))
        .label("rank")
    )
    runs = select(RunRow.id, RunRow.status, RunRow.started_at, rank)
    if workflow is not None:
        runs = runs.where(RunRow.workflow == workflow)
    ranked = runs.subquery()
    limits = []
    if keep_runs is not None:
        limits.append(ranked.c.rank > keep_runs)
    if keep_days is not None:
        limits.append(ranked.c.started_at < now - timedelta(days=keep_days))
    referenced = select(WorkflowStatusRow.last_run_id).where(
        WorkflowStatusRow.last_run_id.is_not(None)
    )
    doomed_q = select(ranked.c.id).where(
        ranked.c.status != RunStatus.RUNNING.value,
        ranked.c.id.not_in(referenced),
        or_(*limits),
    )
    doomed: Sequence[str] = (await conn.execute(doomed_q)).scalars().all()
    for start in range(0, len(doomed), _CHUNK):
        chunk = list(doomed[start : start + _CHUNK])
        await conn.execute(delete(JournalRow).where(JournalRow.run_id.in_(chunk)))
        await conn.execute(
            delete(RunRow).where(RunRow.id.in_(chunk), RunRow.status != RunStatus.RUNNING.value)
        )
    return len(doomed)


async def prune_periodically(
    store: Prunable,
    keep_runs: int | None,
    *,
    keep_days: int | None,
    interval: float = 3600.0,
) -> None:
    """Prune every ``interval`` seconds until cancelled; a failed pass is logged and retried at
    the next interval rather than stopping the daemon."""
    while True:
        try:
            removed = await store.prune(keep_runs, keep_days)
            if removed:
                log.info("pruned old runs", runs=removed)
        except StoreError as exc:
            log.warning("pruning runs failed", error=str(exc))
        await asyncio.sleep(interval)
