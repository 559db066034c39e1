"""compliance decisions and contact purpose

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Every compliance-engine decision is kept; contact attempts record who was contacted
(debtor, guarantor, third party) and why; each case keeps the rule pack it ran under.
"""

import sqlalchemy as sa
from alembic import op

from duecourse.store.types import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compliance_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("loan_id", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=96), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("recipient_kind", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("proposed_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("until", UtcDateTime(timezone=True), nullable=True),
        sa.Column("code", sa.String(length=48), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["collection_cases.case_id"], name=op.f("fk_compliance_decisions_case_id")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_decisions")),
        sa.UniqueConstraint(
            "idempotency_key", name=op.f("uq_compliance_decisions_idempotency_key")
        ),
    )
    with op.batch_alter_table("compliance_decisions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_compliance_decisions_loan_id"), ["loan_id"], unique=False
        )

    with op.batch_alter_table("collection_cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("compliance", sa.JSON(), nullable=True))

    with op.batch_alter_table("contact_attempts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "recipient_kind", sa.String(length=16), server_default="debtor", nullable=False
            )
        )
        batch_op.add_column(
            sa.Column("purpose", sa.String(length=32), server_default="collection", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("contact_attempts", schema=None) as batch_op:
        batch_op.drop_column("purpose")
        batch_op.drop_column("recipient_kind")

    with op.batch_alter_table("collection_cases", schema=None) as batch_op:
        batch_op.drop_column("compliance")

    with op.batch_alter_table("compliance_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compliance_decisions_loan_id"))

    op.drop_table("compliance_decisions")
