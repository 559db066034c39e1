"""payments through a provider: each checkout and what the provider said of it

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from duecourse.store.types import Amount, UtcDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_payments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("checkout_id", sa.String(200), nullable=False),
        sa.Column("case_id", sa.String(64), sa.ForeignKey(
            "collection_cases.case_id", name=op.f("fk_provider_payments_case_id")),
            nullable=False),
        sa.Column("loan_id", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(128), nullable=False),
        sa.Column("amount", Amount, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("paid_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("reported_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("refunded_at", UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_payments")),
        sa.UniqueConstraint("provider", "checkout_id",
                            name="uq_provider_payments_provider_checkout"),
        sa.UniqueConstraint("reference", name=op.f("uq_provider_payments_reference")),
    )
    op.create_index(op.f("ix_provider_payments_loan_id"), "provider_payments", ["loan_id"])
    op.create_index(op.f("ix_provider_payments_external_id"), "provider_payments",
                    ["external_id"])


def downgrade() -> None:
    op.drop_table("provider_payments")
