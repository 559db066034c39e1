"""platforms

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

PLACEHOLDER (H6 tenancy: platforms own loans, webhooks and keys)
- the owner replaces this docstring and the bodies below.
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
