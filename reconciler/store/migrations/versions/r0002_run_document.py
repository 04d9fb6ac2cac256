"""Runs keep the workflow document they started with, so a resumed run runs that spec.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

``runs.document`` is the validated workflow as JSON, written with the run's record when it
starts and cleared when it finishes. Runs recorded before this revision have none: they resume
with the spec git holds at the time, as they did before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a plain ALTER on both backends: a batch rebuild of `runs` on SQLite would drop the table,
    # and with it (ON DELETE CASCADE) every journal entry
    op.add_column("runs", sa.Column("document", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "document")
