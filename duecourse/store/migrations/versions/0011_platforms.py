"""platforms

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

Platforms (tenants) own loans and webhooks; a platform key belongs to one. Until now a
platform key's name was the owner, so each existing platform key becomes a platform of
the same id (as do any owner values in loan_owners and webhooks without such a key), and
is linked to it: every `loan_owners.platform` and `webhooks.owner` stays valid as is.

Downgrade drops the platforms and the keys' link; the owner values are left alone, and
the 0.4 code reads them as key names again - so a platform whose first key was revoked
after a rotation needs a key named after the platform id to see its loans then.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from duecourse.store.types import UtcDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    platforms = op.create_table(
        "platforms",
        sa.Column("platform_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("platform_id", name=op.f("pk_platforms")),
    )
    conn = op.get_bind()
    keys = sa.table("api_keys", sa.column("name", sa.String), sa.column("role", sa.String),
                    sa.column("created_at", UtcDateTime))
    owners = sa.table("loan_owners", sa.column("platform", sa.String))
    hooks = sa.table("webhooks", sa.column("owner", sa.String))
    found: dict[str, datetime] = dict(conn.execute(sa.select(
        keys.c.name, keys.c.created_at).where(keys.c.role == "platform")).all())
    now = datetime.now(UTC)
    for column in (owners.c.platform, hooks.c.owner):
        for owner in conn.execute(sa.select(column).distinct()).scalars():
            found.setdefault(owner, now)
    if found:
        op.bulk_insert(platforms, [
            {"platform_id": pid, "name": pid, "created_at": created, "disabled_at": None}
            for pid, created in sorted(found.items())])

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("platform_id", sa.String(length=128), nullable=True))
        batch_op.create_index(batch_op.f("ix_api_keys_platform_id"), ["platform_id"],
                              unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_api_keys_platform_id"), "platforms",
                                    ["platform_id"], ["platform_id"])
    linked = sa.table("api_keys", sa.column("name", sa.String),
                      sa.column("role", sa.String), sa.column("platform_id", sa.String))
    conn.execute(linked.update().where(linked.c.role == "platform").values(
        platform_id=linked.c.name))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_api_keys_platform_id"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_api_keys_platform_id"))
        batch_op.drop_column("platform_id")
    op.drop_table("platforms")

