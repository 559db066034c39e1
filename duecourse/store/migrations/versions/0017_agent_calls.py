"""agent calls placed through the dialer

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from duecourse.store.types import UtcDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_calls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("case_id", sa.String(64), sa.ForeignKey(
            "collection_cases.case_id", name=op.f("fk_agent_calls_case_id")), nullable=False),
        sa.Column("loan_id", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(200), nullable=True),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("recipient_kind", sa.String(16), nullable=False),
        sa.Column("person", sa.String(128), nullable=True),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(128), nullable=False),
        sa.Column("dialer", sa.String(64), nullable=False),
        sa.Column("decision", sa.JSON, nullable=False),
        sa.Column("requested_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("placed_at", UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_calls")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_agent_calls_idempotency_key")),
        sa.UniqueConstraint("call_id", name=op.f("uq_agent_calls_call_id")),
    )
    op.create_index(op.f("ix_agent_calls_loan_id"), "agent_calls", ["loan_id"])


def downgrade() -> None:
    op.drop_table("agent_calls")
