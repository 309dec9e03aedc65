"""The one place that applies the tenant filter.

Every read or write of a tenant-owned row goes through these helpers. Another tenant's row is
indistinguishable from a missing one: both raise the same :class:`NotFound`.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol, TypeVar

from sqlmodel import Session, select
from sqlmodel.sql.expression import SelectOfScalar

from app.errors import NotFound


class TenantOwned(Protocol):
    id: Any
    tenant_id: uuid.UUID


T = TypeVar("T", bound=TenantOwned)


def owned(model: type[T], tenant_id: uuid.UUID) -> SelectOfScalar[T]:
    """``SELECT`` of ``model`` restricted to one tenant's rows."""
    return select(model).where(model.tenant_id == tenant_id)


def get_owned(session: Session, model: type[T], object_id: Any, tenant_id: uuid.UUID) -> T:
    """Load one of the tenant's rows, or raise NotFound (also for another tenant's id)."""
    try:
        key = uuid.UUID(str(object_id))
    except ValueError:
        raise NotFound() from None
    row = session.exec(owned(model, tenant_id).where(model.id == key)).first()
    if row is None:
        raise NotFound()
    return row
