"""``GET /v1/audit``: the caller's tenant's audit trail (scope ``tenants:admin``).

Entries say who (client), what (action, object type and id), when and how it ended; they
never hold personal data.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from app import audit
from app.api.deps import ReadSession, require
from app.api.problems import STANDARD_ERRORS
from app.auth import Principal, Scope

router = APIRouter(tags=["tenants"], responses=STANDARD_ERRORS)
Admin = Annotated[Principal, require(Scope.TENANTS_ADMIN)]


class AuditEntry(BaseModel):
    id: uuid.UUID
    at: datetime
    client_id: str
    action: str = Field(examples=["screening.created"])
    object_type: str = Field(examples=["screening"])
    object_id: uuid.UUID | None
    outcome: str = Field(examples=["ok"])


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


@router.get(
    "/v1/audit",
    response_model=AuditPage,
    summary="Read your tenant's audit trail",
    description="Newest first. Erased screenings keep their `screening.erased` entry.",
    operation_id="list_audit",
)
async def list_audit(
    principal: Admin,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size (1-200).")] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z_.]+$")] = None,
) -> AuditPage:
    rows, nxt = audit.list_page(session, principal, action=action, limit=limit, cursor=cursor)
    items = [
        AuditEntry(
            id=r.id,
            at=r.at,
            client_id=r.client_id,
            action=r.action,
            object_type=r.object_type,
            object_id=r.object_id,
            outcome=r.outcome,
        )
        for r in rows
    ]
    return AuditPage(items=items, next_cursor=nxt)
