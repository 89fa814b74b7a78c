"""Node-verified trust: pinned node keys, signed study specs, signed release envelopes, audit heads.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from phds.hub.store.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("public_key", sa.String(64), nullable=True))
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("signed_spec", sa.JSON(), nullable=True))
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("envelope", sa.JSON(), nullable=True))
    op.create_table(
        "audit_heads",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("node_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(128), nullable=False),
        sa.Column("head", sa.JSON(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name=op.f("fk_audit_heads_node_id_nodes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_heads")),
    )
    op.create_index("ix_audit_heads_node_seq", "audit_heads", ["node_id", "seq"])
    op.create_table(
        "revocation_lists",
        sa.Column("sequence", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_revocation_lists")),
    )


def downgrade() -> None:
    op.drop_table("revocation_lists")
    op.drop_index("ix_audit_heads_node_seq", table_name="audit_heads")
    op.drop_table("audit_heads")
    with op.batch_alter_table("results") as batch:
        batch.drop_column("envelope")
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("signed_spec")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("public_key")
