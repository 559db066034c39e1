"""channel adapters: which adapter sent each message, and an SMS's segments and encoding

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contact_attempts") as batch:
        batch.add_column(sa.Column("sent_via", sa.String(64), nullable=True))
        batch.add_column(sa.Column("segments", sa.Integer, nullable=True))
        batch.add_column(sa.Column("encoding", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contact_attempts") as batch:
        batch.drop_column("encoding")
        batch.drop_column("segments")
        batch.drop_column("sent_via")
