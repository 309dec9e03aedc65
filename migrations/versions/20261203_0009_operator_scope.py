"""knowledge:admin belongs to operator clients only

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

`create-client --admin` used to grant every scope, knowledge:admin included, so one tenant's
admin could upload and activate a knowledge-base release that changes every other tenant's
results. That scope is now granted only by `create-client --operator`, to clients of the
"operator" tenant. This removes it from every other client; an operator creates an operator
client after upgrading. The downgrade gives nothing back: who held it is not recorded.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

OPERATOR_TENANT = "operator"  # app.auth.OPERATOR_TENANT, frozen here as of this revision
OPERATOR_ONLY = "knowledge:admin"

clients = sa.table(
    "clients",
    sa.column("id", sa.Uuid()),
    sa.column("tenant_id", sa.Uuid()),
    sa.column("scopes", sa.JSON()),
)
tenants = sa.table("tenants", sa.column("id", sa.Uuid()), sa.column("name", sa.String()))


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(clients.c.id, clients.c.scopes, tenants.c.name).join(
            tenants, tenants.c.id == clients.c.tenant_id
        )
    ).all()
    for client_id, scopes, tenant in rows:
        if tenant != OPERATOR_TENANT and OPERATOR_ONLY in (scopes or []):
            kept = [s for s in scopes if s != OPERATOR_ONLY]
            conn.execute(clients.update().where(clients.c.id == client_id).values(scopes=kept))


def downgrade() -> None:
    pass
