"""day-one administration: users can be disabled; integration clients have scopes, can
be revoked, and remember when their key was last rotated

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("integration_clients") as batch:
        batch.add_column(
            sa.Column(
                "scopes",
                sa.String(length=200),
                nullable=False,
                server_default="requests:submit requests:read validations",
            )
        )
        batch.add_column(sa.Column("key_rotated_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("integration_clients") as batch:
        batch.drop_column("revoked_at")
        batch.drop_column("key_rotated_at")
        batch.drop_column("scopes")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("disabled_at")
