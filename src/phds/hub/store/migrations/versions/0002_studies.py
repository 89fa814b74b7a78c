"""Studies, their target hospitals, tasks and results: the study runner's persistent state.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from phds.hub.store.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_STUDY_STATES = (
    "'submitted', 'awaiting_approval', 'running', 'completed', 'partially_completed', 'rejected', 'failed'"
)
_TASK_STATES = "'queued', 'leased', 'parked', 'done', 'cancelled'"


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"))


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("requester_category", sa.String(16), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("analysis", sa.String(100), nullable=False),
        sa.Column("analysis_version", sa.String(20), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("round_state", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("submitted_at", UTCDateTime(), nullable=False),
        sa.Column("deadline_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(f"state IN ({_STUDY_STATES})", name="state"),
        _fk("studies", "organisation_id", "organisations"),
        _fk("studies", "created_by", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studies")),
    )
    op.create_index("ix_studies_org_submitted", "studies", ["organisation_id", "submitted_at"])
    op.create_index("ix_studies_state_deadline", "studies", ["state", "deadline_at"])
    op.create_table(
        "study_targets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("node_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        _fk("study_targets", "study_id", "studies"),
        _fk("study_targets", "organisation_id", "organisations"),
        _fk("study_targets", "node_id", "nodes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_targets")),
        sa.UniqueConstraint("study_id", "organisation_id", name="uq_study_targets_study_org"),
    )
    op.create_index("ix_study_targets_organisation_id", "study_targets", ["organisation_id"])
    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("node_id", sa.Uuid(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("round_state", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(f"state IN ({_TASK_STATES})", name="state"),
        _fk("tasks", "study_id", "studies"),
        _fk("tasks", "organisation_id", "organisations"),
        _fk("tasks", "node_id", "nodes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("study_id", "organisation_id", "round", name="uq_tasks_study_org_round"),
    )
    op.create_index("ix_tasks_node_state", "tasks", ["node_id", "state"])
    op.create_index("ix_tasks_state_lease", "tasks", ["state", "lease_expires_at"])
    op.create_table(
        "results",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("compute_seconds", sa.Float(), nullable=False),
        sa.Column("audit_hash", sa.String(128), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        _fk("results", "task_id", "tasks"),
        _fk("results", "study_id", "studies"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_results")),
        sa.UniqueConstraint("task_id", name=op.f("uq_results_task_id")),
    )
    op.create_index(op.f("ix_results_study_id"), "results", ["study_id"])


def downgrade() -> None:
    for table in ("results", "tasks", "study_targets", "studies"):
        op.drop_table(table)
