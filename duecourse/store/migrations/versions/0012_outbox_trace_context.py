"""outbox trace context

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02

An outbox row keeps the W3C traceparent of the span that wrote it (the activity recording
the fact), so the webhook delivery span continues that trace. Nullable and additive: rows
written with tracing off, or by older workers, have none and are delivered as before.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("traceparent", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_outbox", schema=None) as batch_op:
        batch_op.drop_column("traceparent")
