"""a signing lease on each request being signed: which process signs it and until when

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("signing_requests") as batch:
        batch.add_column(sa.Column("signing_owner", sa.String(length=80), nullable=True))
        batch.add_column(
            sa.Column("signing_lease_until", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("signing_requests") as batch:
        batch.drop_column("signing_lease_until")
        batch.drop_column("signing_owner")
