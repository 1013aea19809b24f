"""organisations (seal image and diameter), their credentials and clerks, and workflow
steps of signing requests

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("name", sa.String(length=64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("seal_image", sa.LargeBinary(), nullable=True),
        sa.Column("seal_diameter_mm", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("organisation_id", sa.String(length=36), nullable=True))
        batch.create_foreign_key(
            "fk_users_organisation_id", "organisations", ["organisation_id"], ["id"]
        )
        batch.create_index("ix_users_organisation_id", ["organisation_id"])
    with op.batch_alter_table("credentials") as batch:
        batch.add_column(sa.Column("organisation_id", sa.String(length=36), nullable=True))
        batch.create_foreign_key(
            "fk_credentials_organisation_id", "organisations", ["organisation_id"], ["id"]
        )
    with op.batch_alter_table("signing_requests") as batch:
        batch.add_column(sa.Column("organisation_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("workflow", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("workflow_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("step", sa.Integer(), nullable=False, server_default="1"))
        batch.create_foreign_key(
            "fk_signing_requests_organisation_id", "organisations", ["organisation_id"], ["id"]
        )
        batch.create_index("ix_signing_requests_workflow_id", ["workflow_id"])


def downgrade() -> None:
    with op.batch_alter_table("signing_requests") as batch:
        batch.drop_index("ix_signing_requests_workflow_id")
        batch.drop_constraint("fk_signing_requests_organisation_id", type_="foreignkey")
        for column in ("step", "workflow_id", "workflow", "organisation_id"):
            batch.drop_column(column)
    with op.batch_alter_table("credentials") as batch:
        batch.drop_constraint("fk_credentials_organisation_id", type_="foreignkey")
        batch.drop_column("organisation_id")
    with op.batch_alter_table("users") as batch:
        batch.drop_index("ix_users_organisation_id")
        batch.drop_constraint("fk_users_organisation_id", type_="foreignkey")
        batch.drop_column("organisation_id")
    op.drop_table("organisations")
