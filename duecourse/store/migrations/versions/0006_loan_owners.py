"""loan owners

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28

The platform that handed each loan over, so its events reach that platform's webhooks only.
"""

import sqlalchemy as sa
from alembic import op

from duecourse.store.types import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loan_owners",
        sa.Column("loan_id", sa.String(length=64), nullable=False),
        sa.Column("platform", sa.String(length=128), nullable=False),
        sa.Column("claimed_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("loan_id", name=op.f("pk_loan_owners")),
    )
    with op.batch_alter_table("loan_owners", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_loan_owners_platform"), ["platform"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("loan_owners", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loan_owners_platform"))
    op.drop_table("loan_owners")
