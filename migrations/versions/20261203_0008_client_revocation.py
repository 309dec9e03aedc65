"""when a client was disabled: its tokens are refused from then on

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

A disabled or deleted client's access tokens used to keep working until they expired (up to
15 minutes). Every request now checks the client (cached for a moment per process); the time
it was disabled is kept for the audit of who could act when.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("clients", sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("revoked_at")
