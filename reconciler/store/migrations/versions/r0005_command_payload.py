"""Commands carry what the request said beyond its target.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

``commands.payload``: JSON, ``NULL`` for a request that carried nothing (a plain sync, a
suspend, a resume, a cancel, and every command recorded before this revision). An approval
keeps its verdict and comment there; a sync with run inputs keeps the inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("commands", sa.Column("payload", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("commands", "payload")
