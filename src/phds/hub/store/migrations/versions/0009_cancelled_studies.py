"""A requester may cancel a study: ``cancelled`` joins the study states.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BEFORE = (
    "submitted",
    "awaiting_approval",
    "running",
    "completed",
    "partially_completed",
    "rejected",
    "failed",
)
_AFTER = (*_BEFORE, "cancelled")


def _check(states: tuple[str, ...]) -> str:
    return f"state IN ({', '.join(repr(s) for s in states)})"


def upgrade() -> None:
    # SQLite rebuilds the table for a new CHECK; HubStore.migrate turns foreign keys off around it.
    with op.batch_alter_table("studies") as batch:
        batch.drop_constraint(op.f("ck_studies_state"), type_="check")
        batch.create_check_constraint(op.f("ck_studies_state"), _check(_AFTER))


def downgrade() -> None:
    op.execute("UPDATE studies SET state = 'failed' WHERE state = 'cancelled'")
    with op.batch_alter_table("studies") as batch:
        batch.drop_constraint(op.f("ck_studies_state"), type_="check")
        batch.create_check_constraint(op.f("ck_studies_state"), _check(_BEFORE))
