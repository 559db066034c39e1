"""payload access audit

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

One row per request to the codec server (the Temporal UI or CLI decoding or encoding
payloads), allowed or refused, so who read sealed borrower data is provable. Additive:
nothing older reads or writes it.
"""

import sqlalchemy as sa
from alembic import op

from duecourse.store.types import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payload_access",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("occurred_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("operation", sa.String(length=8), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        sa.Column("key_name", sa.String(length=128), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("namespace", sa.String(length=255), nullable=True),
        sa.Column("origin", sa.Text(), nullable=True),
        sa.Column("payload_count", sa.Integer(), nullable=False),
        sa.Column("payload_key_ids", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payload_access")),
    )
    with op.batch_alter_table("payload_access", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payload_access_occurred_at"), ["occurred_at"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payload_access", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payload_access_occurred_at"))
    op.drop_table("payload_access")
