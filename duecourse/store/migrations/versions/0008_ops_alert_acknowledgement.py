"""ops alert acknowledgement

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08

An ops alert records who acknowledged it, when and with what note, so `duecourse alerts
--open` shows only what still needs someone. Additive: older workers keep writing alerts.
"""

import sqlalchemy as sa
from alembic import op

from duecourse.store.types import UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _columns() -> list[sa.Column]:
    return [
        sa.Column("acknowledged_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=160), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("ops_alerts", schema=None) as batch_op:
        for column in _columns():
            batch_op.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("ops_alerts", schema=None) as batch_op:
        for column in reversed(_columns()):
            batch_op.drop_column(column.name)
