"""TOTP secrets live with the bridge only: drop the gateway's copies and counters

The bridge checks every code itself (its signer registry keeps the secret, the last
accepted step and the lockout), so the gateway keeps only when a signer enrolled. Users
enrolled before this upgrade keep ``totp_enrolled_at``; their secret must also be at the
bridge (``signing-gateway bridge ...`` or a new enrolment from the tablet).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("totp_enrolled_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        sa.text("UPDATE users SET totp_enrolled_at = created_at WHERE totp_secret IS NOT NULL")
    )
    with op.batch_alter_table("users") as batch:
        batch.drop_column("totp_secret")
        batch.drop_column("totp_pending_secret")
        batch.drop_column("totp_last_step")
        batch.drop_column("totp_failures")
        batch.drop_column("totp_locked_until")


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("totp_secret", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("totp_pending_secret", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("totp_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("totp_locked_until", sa.DateTime(timezone=True), nullable=True))
        batch.drop_column("totp_enrolled_at")
