"""personal data sealed at rest; tenant and subject keys; retention period

Screenings' request and result move from clear text into AES-256-GCM ciphertext sealed with a
key per screening (``subject_keys``), wrapped by a versioned key per tenant (``tenant_keys``),
wrapped in turn by the master key from the settings. Rows that already exist are sealed here,
with the master key the application is configured with; the downgrade opens them again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import hashlib
import uuid

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_screenings = sa.table(
    "screenings",
    sa.column("id", sa.Uuid()),
    sa.column("tenant_id", sa.Uuid()),
    sa.column("request_json", sa.Text()),
    sa.column("result_json", sa.Text()),
    sa.column("request_hash", sa.String()),
    sa.column("request_sealed", sa.LargeBinary()),
    sa.column("result_sealed", sa.LargeBinary()),
)


def _keyring():  # type: ignore[no-untyped-def]
    from app.keys import KeyRing
    from app.settings import Settings

    return KeyRing(Settings().master_key_bytes())


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("retention_days", sa.Integer(), nullable=False, server_default="365")
        )

    op.create_table(
        "tenant_keys",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("master_key_id", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "version"),
    )
    op.create_table(
        "subject_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_key_version", sa.Integer(), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "tenant_key_version"],
            ["tenant_keys.tenant_id", "tenant_keys.version"],
            name="fk_subject_keys_tenant_key",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("subject_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subject_keys_tenant_id"), ["tenant_id"], unique=False)

    with op.batch_alter_table("screenings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_sealed", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("result_sealed", sa.LargeBinary(), nullable=True))

    bind = op.get_bind()
    rows = bind.execute(
        sa.select(
            _screenings.c.id,
            _screenings.c.tenant_id,
            _screenings.c.request_json,
            _screenings.c.result_json,
        )
    ).all()
    if rows:
        from sqlmodel import Session

        keys = _keyring()
        with Session(bind=bind) as session:
            for row_id, tenant_id, request_json, result_json in rows:
                key = keys.new_subject_key(session, tenant_id, row_id, "screenings")
                session.connection().execute(
                    sa.update(_screenings)
                    .where(_screenings.c.id == row_id)
                    .values(
                        request_sealed=key.seal("request", request_json.encode()),
                        result_sealed=key.seal("result", result_json.encode()),
                    )
                )
            session.flush()

    with op.batch_alter_table("screenings", schema=None) as batch_op:
        batch_op.alter_column("request_sealed", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.alter_column("result_sealed", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column("request_json")
        batch_op.drop_column("result_json")
        batch_op.drop_column("request_hash")


def downgrade() -> None:
    with op.batch_alter_table("screenings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_json", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("result_json", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("request_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )

    bind = op.get_bind()
    rows = bind.execute(
        sa.select(
            _screenings.c.id,
            _screenings.c.tenant_id,
            _screenings.c.request_sealed,
            _screenings.c.result_sealed,
        )
    ).all()
    if rows:
        from sqlmodel import Session

        keys = _keyring()
        with Session(bind=bind) as session:
            for row_id, tenant_id, request_sealed, result_sealed in rows:
                key = keys.subject_key(session, uuid.UUID(str(tenant_id)), row_id, "screenings")
                request_json = key.open("request", request_sealed)
                session.connection().execute(
                    sa.update(_screenings)
                    .where(_screenings.c.id == row_id)
                    .values(
                        request_json=request_json.decode(),
                        result_json=key.open("result", result_sealed).decode(),
                        request_hash=hashlib.sha256(request_json).hexdigest(),
                    )
                )
            session.flush()

    with op.batch_alter_table("screenings", schema=None) as batch_op:
        batch_op.alter_column("request_json", existing_type=sa.Text(), nullable=False)
        batch_op.alter_column("result_json", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("request_sealed")
        batch_op.drop_column("result_sealed")

    with op.batch_alter_table("subject_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subject_keys_tenant_id"))
    op.drop_table("subject_keys")
    op.drop_table("tenant_keys")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("retention_days")
