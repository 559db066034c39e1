"""payload access audit

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

PLACEHOLDER (H2 codec server: an audit row per decode request)
- the owner replaces this docstring and the bodies below.
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
