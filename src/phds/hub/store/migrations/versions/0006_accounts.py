"""The money path: tariff versions, billing profiles, applications, quotes, participations, invoices.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from phds.hub.store.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(14, 2)


def upgrade() -> None:
    op.create_table(
        "tariff_versions",
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_tariff_versions")),
        sa.UniqueConstraint("effective_from", name=op.f("uq_tariff_versions_effective_from")),
    )
    op.create_table(
        "billing_profiles",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("profile", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_billing_profiles_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("organisation_id", name=op.f("pk_billing_profiles")),
    )
    op.create_table(
        "applications",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("form", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_applications_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applications")),
    )
    op.create_table(
        "quotes",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("application_id", sa.String(32), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("tariff_version", sa.String(40), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("ceiling", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name=op.f("fk_quotes_application_id_applications")
        ),
        sa.ForeignKeyConstraint(
            ["tariff_version"],
            ["tariff_versions.version"],
            name=op.f("fk_quotes_tariff_version_tariff_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quotes")),
        sa.UniqueConstraint("application_id", "revision", name="uq_quotes_application_revision"),
    )
    op.create_table(
        "participations",
        sa.Column("application_id", sa.String(32), nullable=False),
        sa.Column("hospital", sa.String(63), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("pass_through", MONEY, nullable=False),
        sa.Column("statement", sa.JSON(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_participations_application_id_applications"),
        ),
        sa.PrimaryKeyConstraint("application_id", "hospital", name=op.f("pk_participations")),
    )
    op.create_table(
        "invoice_counters",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_invoice_counters")),
    )
    op.create_table(
        "invoices",
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("series", sa.String(40), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("tariff_version", sa.String(40), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("net_total", MONEY, nullable=False),
        sa.Column("vat_total", MONEY, nullable=False),
        sa.Column("gross_total", MONEY, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("paid_at", UTCDateTime(), nullable=True),
        sa.Column("payment_reference", sa.Text(), nullable=True),
        sa.Column("credit_of", sa.String(32), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"], ["organisations.id"], name=op.f("fk_invoices_organisation_id_organisations")
        ),
        sa.ForeignKeyConstraint(
            ["tariff_version"],
            ["tariff_versions.version"],
            name=op.f("fk_invoices_tariff_version_tariff_versions"),
        ),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_invoices")),
        sa.UniqueConstraint("organisation_id", "period", "series", name="uq_invoices_period"),
    )
    op.create_table(
        "payouts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("hospital", sa.String(63), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("invoices", sa.JSON(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.Column("paid_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
    )


def downgrade() -> None:
    tables = (
        "payouts",
        "invoices",
        "invoice_counters",
        "participations",
        "quotes",
        "applications",
        "billing_profiles",
    )
    for table in (*tables, "tariff_versions"):
        op.drop_table(table)
