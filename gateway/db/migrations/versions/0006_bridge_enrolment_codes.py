"""device enrolment codes move to the bridge (its signer registry); drop the gateway's

Codes issued by the gateway could not stop a compromised gateway from enrolling a key of
its own; the bridge now issues them and checks each device's proof itself. Codes still
unused at the upgrade are void: issue new ones.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_device_activation_codes_user_id", table_name="device_activation_codes")
    op.drop_table("device_activation_codes")


def downgrade() -> None:
    op.create_table(
        "device_activation_codes",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("user_id", sa.String(length=36), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("code_sha256", sa.String(length=64), nullable=False, unique=True),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_device_activation_codes_user_id", "device_activation_codes", ["user_id"])
