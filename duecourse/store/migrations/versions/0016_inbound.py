"""inbound replies, receipts, bounces and consent

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from duecourse.store.types import UtcDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def _at(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "inbound_replies",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.String(200), nullable=False),
        sa.Column("profile", sa.String(16), nullable=False),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("receiver", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        _at("received_at"), _at("recorded_at"),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("loan_id", sa.String(64), nullable=True),
        _at("claimed_until", True), _at("applied_at", True),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("answer_id", sa.String(200), nullable=True),
        sa.Column("answer_error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_replies")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_inbound_replies_dedup_key")),
    )
    op.create_index(op.f("ix_inbound_replies_sender"), "inbound_replies", ["sender"])
    op.create_index(op.f("ix_inbound_replies_loan_id"), "inbound_replies", ["loan_id"])
    op.create_table(
        "delivery_receipts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.String(260), nullable=False),
        sa.Column("provider_message_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attempt_id", sa.Integer, nullable=True),
        sa.Column("loan_id", sa.String(64), nullable=True),
        _at("received_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_receipts")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_delivery_receipts_dedup_key")),
    )
    for column in ("provider_message_id", "attempt_id", "loan_id"):
        op.create_index(op.f(f"ix_delivery_receipts_{column}"), "delivery_receipts", [column])
    op.create_table(
        "unreachable_addresses",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("loan_id", sa.String(64), nullable=True),
        _at("marked_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unreachable_addresses")),
        sa.UniqueConstraint("channel", "address",
                            name="uq_unreachable_addresses_channel_address"),
    )
    op.create_table(
        "consents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.String(200), nullable=True),
        sa.Column("borrower_id", sa.String(64), nullable=False),
        sa.Column("loan_id", sa.String(64), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(128), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        _at("occurred_at"), _at("recorded_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_consents_dedup_key")),
    )
    op.create_index(op.f("ix_consents_borrower_id"), "consents", ["borrower_id"])


def downgrade() -> None:
    for table in ("consents", "unreachable_addresses", "delivery_receipts",
                  "inbound_replies"):
        op.drop_table(table)
