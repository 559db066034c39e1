"""a case's strategy: the experiment and arm a loan was assigned to at hand-over

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("collection_cases") as batch:
        batch.add_column(sa.Column("experiment", sa.String(64), nullable=True))
        batch.add_column(sa.Column("strategy", sa.String(64), nullable=True))
        batch.create_index(op.f("ix_collection_cases_strategy"), ["strategy"])


def downgrade() -> None:
    with op.batch_alter_table("collection_cases") as batch:
        batch.drop_index(op.f("ix_collection_cases_strategy"))
        batch.drop_column("strategy")
        batch.drop_column("experiment")
