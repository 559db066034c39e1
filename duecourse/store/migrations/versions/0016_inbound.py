"""inbound replies, receipts, bounces and consent

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # placeholder: filled by the issue-13 work


def downgrade() -> None:
    pass
