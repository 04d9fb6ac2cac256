"""Runs say who asked for them and who cancelled them (the API token's name).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

``runs.requested_by``: the names of the tokens whose syncs a manual run answered (comma-
separated, in the order they were asked); ``runs.cancelled_by``: the name of the token whose
cancel was accepted. Both ``NULL`` for runs nobody asked for (drift, a new revision) or
recorded before this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ALTERs on both backends: a batch rebuild of `runs` on SQLite would drop the table,
    # and with it (ON DELETE CASCADE) every journal entry
    op.add_column("runs", sa.Column("requested_by", sa.String(1024), nullable=True))
    op.add_column("runs", sa.Column("cancelled_by", sa.String(255), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "cancelled_by")
    op.drop_column("runs", "requested_by")
