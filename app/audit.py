"""The audit trail: who did what to which object, when, and how it ended. Never personal data.

Written inside the request's transaction by the use cases; read by tenant admins.
"""

from __future__ import annotations

import uuid

from sqlalchemy import insert
from sqlmodel import Session, SQLModel

from app.auth import Principal
from app.models import AuditEvent, utcnow
from app.pagination import keyset_page
from app.tenancy import owned

# A constant statement: compiled once, without the ORM's per-row bookkeeping.
_INSERT = insert(SQLModel.metadata.tables["audit_events"])


def record(
    session: Session,
    principal: Principal,
    action: str,
    object_id: uuid.UUID | None,
    *,
    object_type: str = "screening",
    outcome: str = "ok",
) -> None:
    record_system(
        session,
        principal.tenant_id,
        principal.client_id,
        action,
        object_id,
        object_type=object_type,
        outcome=outcome,
    )


def record_system(
    session: Session,
    tenant_id: uuid.UUID,
    actor: str,
    action: str,
    object_id: uuid.UUID | None,
    *,
    object_type: str = "screening",
    outcome: str = "ok",
) -> None:
    """An entry for an actor that is not an API client (``system:retention``, ...)."""
    session.connection().execute(
        _INSERT,
        {
            "id": uuid.uuid4(),
            "at": utcnow(),
            "tenant_id": tenant_id,
            "client_id": actor,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "outcome": outcome,
        },
    )


def record_many(
    session: Session,
    tenant_id: uuid.UUID,
    actor: str,
    action: str,
    object_ids: list[uuid.UUID],
    *,
    object_type: str = "screening",
) -> None:
    """One entry per object, in one statement (the batch worker stores chunks at a time)."""
    if not object_ids:
        return
    at = utcnow()
    session.connection().execute(
        _INSERT,
        [
            {
                "id": uuid.uuid4(),
                "at": at,
                "tenant_id": tenant_id,
                "client_id": actor,
                "action": action,
                "object_type": object_type,
                "object_id": object_id,
                "outcome": "ok",
            }
            for object_id in object_ids
        ],
    )


def list_page(
    session: Session, principal: Principal, *, action: str | None, limit: int, cursor: str | None
) -> tuple[list[AuditEvent], str | None]:
    """The tenant's entries, newest first."""
    query = owned(AuditEvent, principal.tenant_id)
    if action:
        query = query.where(AuditEvent.action == action)
    return keyset_page(session, query, AuditEvent.at, AuditEvent.id, limit=limit, cursor=cursor)
