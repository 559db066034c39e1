"""retention

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02

PLACEHOLDER (H7 retention: pseudonymised cases)
- the owner replaces this docstring and the bodies below.
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
