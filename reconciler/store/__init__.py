"""The durable store (SQLAlchemy 2 + Alembic; SQLite WAL or PostgreSQL).

Where everything durable lives: the runner journals runs here (:class:`Store` implements :class:`reconciler.engine.journal.Journal`), the
daemon's status book keeps each workflow's :class:`WorkflowStatusRecord`, replicas share work through
:class:`Lease`\\ s, and retention prunes old runs. Open it with ``await Store.open(url,
data_dir=...)``.
"""

from reconciler.status import Health, Sync, WorkflowStatusRecord  # re-exported for callers
from reconciler.store.records import Command, CommandKind, Lease
from reconciler.store.retention import prune_periodically
from reconciler.store.store import FencedJournal, Store, describe, resolve_url

__all__ = [
    "Command",
    "CommandKind",
    "FencedJournal",
    "Health",
    "Lease",
    "Store",
    "Sync",
    "WorkflowStatusRecord",
    "describe",
    "prune_periodically",
    "resolve_url",
]
