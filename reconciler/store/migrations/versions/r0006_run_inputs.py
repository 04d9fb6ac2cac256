"""Runs keep the inputs they were started with.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

``runs.inputs``: JSON, the inputs a run was started with beyond its spec (a run started with
inputs through the API, a child run's ``with:``), so that a run interrupted by a restart, or
taken over by another replica, resumes with the same inputs. ``NULL`` for a run started with
none, and for every run recorded before this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("inputs", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "inputs")
