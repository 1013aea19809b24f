"""the PAdES level each signature reached, as the gateway judged its output

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("signing_requests") as batch:
        batch.add_column(sa.Column("pades_level_reached", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("signing_requests") as batch:
        batch.drop_column("pades_level_reached")
