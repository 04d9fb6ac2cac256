"""Initial schema: workflow_status, runs, journal, leases.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "workflow_status",
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("sync", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("last_applied_revision", sa.String(255), nullable=True),
        sa.Column("last_attempted_revision", sa.String(255), nullable=True),
        sa.Column("spec_digest", sa.String(255), nullable=True),
        sa.Column("last_run_id", sa.String(64), nullable=True),
        _ts("last_success_at", nullable=True),
        _ts("next_check_at", nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("diff", sa.JSON(), nullable=True),
        _ts("observed_at", nullable=True),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_workflow_status"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("workflow", sa.String(253), nullable=False),
        sa.Column("revision", sa.String(255), nullable=False),
        sa.Column("parent_id", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("current_state", sa.String(255), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        _ts("started_at", nullable=False),
        _ts("finished_at", nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_workflow_started_at", "runs", ["workflow", "started_at"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_table(
        "journal",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        _ts("at", nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(255), nullable=True),
        sa.Column("to_state", sa.String(255), nullable=True),
        sa.Column("outcome", sa.String(255), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_journal_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "seq", name="pk_journal"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        _ts("expires_at", nullable=False),
        sa.Column("fencing_token", sa.BigInteger(), nullable=False),
        _ts("acquired_at", nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_table("journal")
    op.drop_index("ix_runs_status", table_name="runs")
    op.drop_index("ix_runs_workflow_started_at", table_name="runs")
    op.drop_table("runs")
    op.drop_table("workflow_status")
