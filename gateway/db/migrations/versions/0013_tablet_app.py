"""what the tablet app needs: a request's title, its pages' displayed sizes and where
its signature shows, a
device's kind (a device key or a passkey), and a user's duty to change a one-time
password

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("signing_requests") as batch:
        batch.add_column(sa.Column("title", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("page_sizes", sa.Text(), nullable=True))
        batch.add_column(sa.Column("signature_place", sa.Text(), nullable=True))
    with op.batch_alter_table("devices") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="device_key")
        )
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column(
                "password_must_change", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("password_must_change")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("signing_requests") as batch:
        batch.drop_column("signature_place")
        batch.drop_column("page_sizes")
        batch.drop_column("title")
