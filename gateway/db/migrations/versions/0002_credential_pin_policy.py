"""credential PIN policy (stored or signer)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("credentials") as batch:
        batch.add_column(
            sa.Column("pin_policy", sa.String(length=16), nullable=False, server_default="stored")
        )


def downgrade() -> None:
    with op.batch_alter_table("credentials") as batch:
        batch.drop_column("pin_policy")
