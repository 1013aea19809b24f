"""logins are throttled (mobile_api.throttle), no longer locked per user: the per-user
failure counter and lock go

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("login_locked_until")
        batch.drop_column("login_failures")


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("login_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("login_locked_until", sa.DateTime(timezone=True)))
