"""retention: pseudonymised cases, and audit triggers that let only their pseudonymisation in

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02

audit_events stays append-only, with one exception: while a retention run's transaction
holds an open `pseudonymised_cases` row for a case (no `completed_at` yet), an UPDATE of
that case's audit rows may change `summary` and `data` only. Deletes stay refused.
"""

import sqlalchemy as sa
from alembic import op

from duecourse.store.types import UtcDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_REFUSAL = "audit_events is append-only"
_FIXED = ("id", "idempotency_key", "case_id", "loan_id", "kind", "actor_kind", "actor_id",
          "occurred_at", "recorded_at")
_OPEN = ("EXISTS (SELECT 1 FROM pseudonymised_cases p WHERE p.case_id = OLD.case_id "
         "AND p.completed_at IS NULL)")


def upgrade() -> None:
    op.create_table(
        "pseudonymised_cases",
        sa.Column("case_id", sa.String(64), sa.ForeignKey(
            "collection_cases.case_id", name="fk_pseudonymised_cases_case_id"), nullable=False),
        sa.Column("loan_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("jurisdiction", sa.String(8), nullable=False),
        sa.Column("retention_years", sa.Integer(), nullable=False),
        sa.Column("last_activity_at", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("completed_at", UtcDateTime(), nullable=True),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("values_replaced", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", name="pk_pseudonymised_cases"),
    )
    op.create_index("ix_pseudonymised_cases_loan_id", "pseudonymised_cases", ["loan_id"])
    op.create_index("ix_pseudonymised_cases_run_id", "pseudonymised_cases", ["run_id"])
    if op.get_bind().dialect.name == "postgresql":
        same = " AND ".join(f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in _FIXED)
        op.execute(f"""
            CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
            BEGIN
              IF TG_OP = 'UPDATE' AND {same} AND {_OPEN} THEN RETURN NEW; END IF;
              RAISE EXCEPTION '{_REFUSAL}';
            END; $$ LANGUAGE plpgsql""")
        return
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _FIXED)
    op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
    op.execute(f"""
        CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
        WHEN NOT {_OPEN} OR {changed}
        BEGIN SELECT RAISE(ABORT, '{_REFUSAL}'); END""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION '{_REFUSAL}'; END; $$ LANGUAGE plpgsql""")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute(f"""
            CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
            BEGIN SELECT RAISE(ABORT, '{_REFUSAL}'); END""")
    op.drop_index("ix_pseudonymised_cases_run_id", table_name="pseudonymised_cases")
    op.drop_index("ix_pseudonymised_cases_loan_id", table_name="pseudonymised_cases")
    op.drop_table("pseudonymised_cases")
