"""SQLModel tables. API shapes live in ``app.schemas``.

Every table a tenant owns has a ``tenant_id``; such rows are read and written only through
``app.tenancy``, the single place that applies the tenant filter.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, String, Text, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both dialects (SQLite hands back naive datetimes)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def _ts() -> Any:
    return Column(UTCDateTime(), nullable=False)


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class Client(SQLModel, table=True):
    """An OAuth2 client. The secret is stored only as an Argon2id hash."""

    __tablename__ = "clients"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", index=True, ondelete="CASCADE")
    client_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    secret_hash: str = Field(sa_column=Column(String(255), nullable=False))
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    name: str = Field(default="", max_length=64)
    disabled: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    secret_rotated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class Screening(SQLModel, table=True):
    """A stored screening: the request as submitted and the result as computed, with the
    versions that produced it, so it can be shown again and reproduced."""

    __tablename__ = "screenings"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_screenings_tenant_idempotency"),
        Index("ix_screenings_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    flag: str = Field(max_length=16)
    score: int
    issuing_country: str | None = Field(default=None, max_length=2)
    engine_version: str = Field(max_length=32)
    kb_version: str = Field(max_length=32)
    kb_sha256: str = Field(max_length=64)
    request_json: str = Field(sa_column=Column(Text, nullable=False))
    result_json: str = Field(sa_column=Column(Text, nullable=False))
    idempotency_key: str | None = Field(default=None, max_length=255)
    request_hash: str | None = Field(default=None, max_length=64)


class AuditEvent(SQLModel, table=True):
    """Who did what to which object, and how it ended. Never personal data."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_tenant_at", "tenant_id", "at", "id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", ondelete="CASCADE")
    at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    client_id: str = Field(max_length=64)
    action: str = Field(max_length=64)
    object_type: str = Field(max_length=32)
    object_id: uuid.UUID | None = None
    outcome: str = Field(max_length=32)
