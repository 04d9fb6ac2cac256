"""Commands the API accepted (``commands``) and the suspension flag of a status row.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "commands",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(253), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_commands"),
    )
    op.create_index("ix_commands_kind_handled_at", "commands", ["kind", "handled_at"])
    with op.batch_alter_table("workflow_status") as batch:
        batch.add_column(
            sa.Column("suspended", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    # Workflows suspended through the API before this revision said so only in their reason.
    op.execute("UPDATE workflow_status SET suspended = true WHERE reason = 'SuspendedManually'")


def downgrade() -> None:
    with op.batch_alter_table("workflow_status") as batch:
        batch.drop_column("suspended")
    op.drop_index("ix_commands_kind_handled_at", table_name="commands")
    op.drop_table("commands")
