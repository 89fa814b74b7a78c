"""Metering: typed study events, consumer cursors and the node-signed usage receipts metered from them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from phds.hub.store.models import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "study_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], name=op.f("fk_study_events_study_id_studies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_events")),
    )
    cursors = op.create_table(
        "event_cursors",
        sa.Column("consumer", sa.String(50), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", name=op.f("pk_event_cursors")),
    )
    # Metering's cursor exists from the start, so two first drains never race to create it.
    op.bulk_insert(cursors, [{"consumer": "metering", "last_event_id": 0}])
    op.create_table(
        "usage_receipts",
        sa.Column("receipt_id", sa.String(100), nullable=False),
        sa.Column("node_id", sa.Uuid(), nullable=False),
        sa.Column("hospital", sa.String(100), nullable=False),
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("application_id", sa.String(64), nullable=True),
        sa.Column("requester_org", sa.String(100), nullable=False),
        sa.Column("service_type", sa.String(50), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("compute_seconds", sa.Float(), nullable=False),
        sa.Column("persons", sa.Integer(), nullable=True),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("receipt", sa.JSON(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("metered_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name=op.f("fk_usage_receipts_node_id_nodes")),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_usage_receipts_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("receipt_id", name=op.f("pk_usage_receipts")),
    )


def downgrade() -> None:
    op.drop_table("usage_receipts")
    op.drop_table("event_cursors")
    op.drop_table("study_events")
