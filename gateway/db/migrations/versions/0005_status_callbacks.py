"""status callbacks to document systems (transactional outbox)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("integration_clients") as batch:
        batch.add_column(sa.Column("callback_secret", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("signing_requests") as batch:
        batch.add_column(sa.Column("callback_url", sa.String(length=2000), nullable=True))
    op.create_table(
        "callback_deliveries",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column(
            "request_id", sa.String(length=36), sa.ForeignKey("signing_requests.id"), nullable=False
        ),
        sa.Column(
            "client_id",
            sa.String(length=36),
            sa.ForeignKey("integration_clients.id"),
            nullable=False,
        ),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
    )
    op.create_index("ix_callback_deliveries_request_id", "callback_deliveries", ["request_id"])
    op.create_index(
        "ix_callback_deliveries_next_attempt_at", "callback_deliveries", ["next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_table("callback_deliveries")
    with op.batch_alter_table("signing_requests") as batch:
        batch.drop_column("callback_url")
    with op.batch_alter_table("integration_clients") as batch:
        batch.drop_column("callback_secret")
