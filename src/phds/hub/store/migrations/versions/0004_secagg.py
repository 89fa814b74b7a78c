"""Secure aggregation: a session per study round and the signed messages the hub relays.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from phds.hub.store.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "secagg_sessions",
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("stage_deadline", UTCDateTime(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=True),
        sa.Column("outcome", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_secagg_sessions_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("study_id", "round", name=op.f("pk_secagg_sessions")),
    )
    op.create_table(
        "secagg_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(200), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_secagg_messages_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secagg_messages")),
        sa.UniqueConstraint("study_id", "round", "stage", "sender", name="uq_secagg_messages_stage_sender"),
    )


def downgrade() -> None:
    op.drop_table("secagg_messages")
    op.drop_table("secagg_sessions")
