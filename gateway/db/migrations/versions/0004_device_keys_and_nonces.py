"""device keys, device activation codes, approval nonces

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(
            sa.Column("name", sa.String(length=100), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("public_key_der", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
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
    op.create_table(
        "approval_nonces",
        sa.Column("nonce", sa.String(length=64), primary_key=True),
        sa.Column("user_id", sa.String(length=36), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_approval_nonces_user_id", "approval_nonces", ["user_id"])


def downgrade() -> None:
    op.drop_table("approval_nonces")
    op.drop_table("device_activation_codes")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("revoked_at")
        batch.drop_column("public_key_der")
        batch.drop_column("name")
