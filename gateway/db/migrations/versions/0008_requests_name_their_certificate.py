"""signing requests name the certificate and mechanism that will sign them

An approval statement binds them (a device approves a signature with one certificate),
so they are fixed when the request is submitted. Existing requests take their
credential's.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("signing_requests") as batch:
        batch.add_column(sa.Column("certificate_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("mechanism", sa.String(length=32), nullable=True))
    op.execute(
        sa.text(
            "UPDATE signing_requests SET"
            " certificate_sha256 = (SELECT certificate_sha256 FROM credentials"
            " WHERE credentials.id = signing_requests.credential_id),"
            " mechanism = (SELECT mechanism FROM credentials"
            " WHERE credentials.id = signing_requests.credential_id)"
        )
    )
    with op.batch_alter_table("signing_requests") as batch:
        batch.alter_column("certificate_sha256", nullable=False)
        batch.alter_column("mechanism", nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("signing_requests") as batch:
        batch.drop_column("mechanism")
        batch.drop_column("certificate_sha256")
