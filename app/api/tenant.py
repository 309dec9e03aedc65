"""``/v1/tenant``: the caller's own tenant and its retention period (scope ``tenants:admin``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app import audit
from app.api.deps import ReadSession, WriteSession, require
from app.api.problems import STANDARD_ERRORS
from app.auth import Principal, Scope
from app.errors import NotFound
from app.models import MAX_RETENTION_DAYS, Tenant

router = APIRouter(tags=["tenants"], responses=STANDARD_ERRORS)
Admin = Annotated[Principal, require(Scope.TENANTS_ADMIN)]

RETENTION = (
    "Days a screening is kept; older screenings are purged (erased, keys destroyed, an audit "
    "entry `screening.purged` kept) by the server's periodic purge."
)


class TenantSettings(BaseModel):
    name: str
    retention_days: int = Field(ge=1, le=MAX_RETENTION_DAYS, description=RETENTION)


class TenantUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retention_days: int = Field(ge=1, le=MAX_RETENTION_DAYS, description=RETENTION)


def _own(session: ReadSession | WriteSession, principal: Principal) -> Tenant:
    tenant = session.get(Tenant, principal.tenant_id)
    if tenant is None:  # a token outliving its tenant
        raise NotFound()
    return tenant


@router.get(
    "/v1/tenant",
    response_model=TenantSettings,
    summary="Your tenant's settings",
    operation_id="read_tenant",
)
async def read_tenant(principal: Admin, session: ReadSession) -> TenantSettings:
    tenant = _own(session, principal)
    return TenantSettings(name=tenant.name, retention_days=tenant.retention_days)


@router.put(
    "/v1/tenant",
    response_model=TenantSettings,
    summary="Change your tenant's retention period",
    description="Takes effect at the next purge: shortening it purges the screenings that "
    "are now past it.",
    operation_id="update_tenant",
)
async def update_tenant(
    principal: Admin, session: WriteSession, body: TenantUpdate
) -> TenantSettings:
    tenant = _own(session, principal)
    tenant.retention_days = body.retention_days
    session.add(tenant)
    audit.record(session, principal, "tenant.retention_changed", tenant.id, object_type="tenant")
    return TenantSettings(name=tenant.name, retention_days=tenant.retention_days)
