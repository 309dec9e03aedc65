"""Revoked clients: a disabled or deleted client's tokens are refused on every process.

Access tokens are verified without the database, so revoking a client cannot recall the
tokens it holds. Every authenticated request therefore asks whether its client still exists
and is enabled; the answer is kept ``ttl`` seconds per client and process, so a revocation
reaches every process within that time (and one indexed read per client per ``ttl`` is the
cost), and disabling or deleting through this process forgets the answer at once.
"""

from __future__ import annotations

import time
import uuid

from sqlmodel import Session
from sqlmodel import select as sqlmodel_select

from app import audit
from app.auth import Principal
from app.db import Database
from app.models import Client, utcnow

TTL_S = 2.0
MAX_ENTRIES = 10_000


class Revocations:
    def __init__(self, db: Database, *, ttl: float = TTL_S) -> None:
        self._db = db
        self._ttl = ttl
        self._active: dict[str, tuple[bool, float]] = {}  # client_id -> (usable, checked at)

    def usable(self, principal: Principal) -> bool:
        """Whether the principal's client exists, is enabled and is the tenant's."""
        now = time.monotonic()
        cached = self._active.get(principal.client_id)
        if cached is not None and now - cached[1] < self._ttl:
            return cached[0]
        with self._db.session(write=False) as session:
            row = session.exec(
                sqlmodel_select(Client).where(Client.client_id == principal.client_id)
            ).first()
        usable = row is not None and not row.disabled and row.tenant_id == principal.tenant_id
        if len(self._active) >= MAX_ENTRIES:
            self._active.clear()
        self._active[principal.client_id] = (usable, now)
        return usable

    def forget(self, client_id: str) -> None:
        self._active.pop(client_id, None)


def disable(session: Session, client: Client, *, actor: str) -> None:
    """Disable a client in the caller's transaction, audited in its tenant."""
    if not client.disabled:
        client.disabled = True
        client.revoked_at = utcnow()
        session.add(client)
        session.flush()
    audit.record_system(
        session, client.tenant_id, actor, "client.disabled", client.id, object_type="client"
    )


def delete(session: Session, client: Client, *, actor: str) -> uuid.UUID:
    """Delete a client in the caller's transaction, audited in its tenant."""
    client_id = client.id
    audit.record_system(
        session, client.tenant_id, actor, "client.deleted", client_id, object_type="client"
    )
    session.delete(client)
    session.flush()
    return client_id
