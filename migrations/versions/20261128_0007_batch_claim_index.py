"""an index that serves the batch workers' claims in order

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28

Workers claim the next pending items of a batch in row order. With only (state,
claim_expires_at) to go on, every claim read all pending items and sorted them, so a batch's
claims cost grew with its size; (state, batch_id, row) hands them over in order.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_batch_items_state_batch_row",
        "batch_items",
        ["state", "batch_id", "row"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_batch_items_state_batch_row", table_name="batch_items")
