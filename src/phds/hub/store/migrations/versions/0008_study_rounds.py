"""Round state stored once per study and round (``study_rounds``), no longer copied into every task.

A FedAvg round's state is the global model; copying it into each hospital's task multiplied it by the
number of hospitals. Existing studies keep their current round's state.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from phds.hub.store.models import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "study_rounds",
        sa.Column("study_id", sa.Uuid(), sa.ForeignKey("studies.id"), primary_key=True),
        sa.Column("round", sa.Integer(), primary_key=True),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.execute(
        "INSERT INTO study_rounds (study_id, round, state, created_at) "
        "SELECT id, round, round_state, submitted_at FROM studies"
    )
    # ALTER TABLE … DROP COLUMN in place (SQLite ≥ 3.35 has it): a batch copy of ``studies`` would drop
    # and re-create a table other tables' foreign keys point at, which SQLite refuses with them on.
    op.drop_column("tasks", "round_state")
    op.drop_column("studies", "round_state")


def downgrade() -> None:
    op.add_column("studies", sa.Column("round_state", sa.JSON(), nullable=False, server_default="{}"))
    op.add_column("tasks", sa.Column("round_state", sa.JSON(), nullable=False, server_default="{}"))
    op.execute(
        "UPDATE studies SET round_state = (SELECT r.state FROM study_rounds r "
        "WHERE r.study_id = studies.id AND r.round = studies.round)"
    )
    op.drop_table("study_rounds")
