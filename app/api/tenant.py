"""``/v1/tenant``: the caller's own tenant's settings (scope ``tenants:admin``)."""

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


RESCREEN = (
    "Re-screen this tenant's stored screenings in the background when a new knowledge-base "
    "release is activated; a `screening.changed` webhook reports each changed flag."
)


class TenantSettings(BaseModel):
    name: str
    retention_days: int = Field(ge=1, le=MAX_RETENTION_DAYS, description=RETENTION)
    rescreen_on_release: bool = Field(description=RESCREEN)


class TenantUpdate(BaseModel):
    """The settings to change; those left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    retention_days: int | None = Field(
        default=None, ge=1, le=MAX_RETENTION_DAYS, description=RETENTION
    )
    rescreen_on_release: bool | None = Field(default=None, description=RESCREEN)


def _settings(tenant: Tenant) -> TenantSettings:
    return TenantSettings(
        name=tenant.name,
        retention_days=tenant.retention_days,
        rescreen_on_release=tenant.rescreen_on_release,
    )


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
    return _settings(_own(session, principal))


@router.put(
    "/v1/tenant",
    response_model=TenantSettings,
    summary="Change your tenant's settings",
    description="A new retention period takes effect at the next purge: shortening it purges "
    "the screenings that are now past it. `rescreen_on_release` applies from the next "
    "knowledge-base activation.",
    operation_id="update_tenant",
)
async def update_tenant(
    principal: Admin, session: WriteSession, body: TenantUpdate
) -> TenantSettings:
    tenant = _own(session, principal)
    if body.retention_days is not None and body.retention_days != tenant.retention_days:
        tenant.retention_days = body.retention_days
        audit.record(
            session, principal, "tenant.retention_changed", tenant.id, object_type="tenant"
        )
    if body.rescreen_on_release is not None and (
        body.rescreen_on_release != tenant.rescreen_on_release
    ):
        tenant.rescreen_on_release = body.rescreen_on_release
        audit.record(session, principal, "tenant.rescreen_changed", tenant.id, object_type="tenant")
    session.add(tenant)
    return _settings(tenant)
