"""fenced sends

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

A send claims its contact_attempts row (with the decision it was allowed by and a lease)
before calling the channel, counts the channel's attempts, and records when its last check
passed and when the channel accepted it; a decision keeps the end of its lawful window.
"""

import sqlalchemy as sa
from alembic import op

from duecourse.store.types import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

def _contact_columns() -> list[sa.Column]:
    return [
        sa.Column("decision_key", sa.String(length=200), nullable=True),
        sa.Column("not_after", UtcDateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_until", UtcDateTime(timezone=True), nullable=True),
        sa.Column("channel_attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("fenced_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("sent_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("contact_attempts", schema=None) as batch_op:
        for column in _contact_columns():
            batch_op.add_column(column)
    with op.batch_alter_table("compliance_decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("valid_until", UtcDateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("compliance_decisions", schema=None) as batch_op:
        batch_op.drop_column("valid_until")
    with op.batch_alter_table("contact_attempts", schema=None) as batch_op:
        for column in reversed(_contact_columns()):
            batch_op.drop_column(column.name)
