"""SQLModel tables. API shapes live in ``app.schemas``.

Every table a tenant owns has a ``tenant_id``; such rows are read and written only through
``app.tenancy``, the single place that applies the tenant filter.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

DEFAULT_RETENTION_DAYS = 365
MAX_RETENTION_DAYS = 3650


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
    # Screenings older than this are purged (``app.retention``).
    retention_days: int = Field(default=DEFAULT_RETENTION_DAYS, ge=1, le=MAX_RETENTION_DAYS)
    # Re-screen stored screenings when a knowledge-base release is activated (``app.rescreen``).
    rescreen_on_release: bool = Field(default=False)


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
    # When it was disabled: its tokens are refused from then on (``app.revocation``).
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class Screening(SQLModel, table=True):
    """A stored screening: the request as submitted and the result as computed, sealed with the
    screening's own key (``SubjectKey``), plus the clear metadata that lists and filters need
    (flag, score, requesting state, versions), none of which identifies the person."""

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
    request_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    result_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    idempotency_key: str | None = Field(default=None, max_length=255)


class TenantKey(SQLModel, table=True):
    """A tenant's data-encryption key, one row per version, wrapped by the master key (which
    is never stored). The newest version wraps new subject keys."""

    __tablename__ = "tenant_keys"

    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", primary_key=True, ondelete="CASCADE")
    version: int = Field(primary_key=True)
    master_key_id: str = Field(max_length=16)
    wrapped: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class SubjectKey(SQLModel, table=True):
    """The key that seals one object's personal data (a screening), wrapped by a tenant key.
    Deleting it is erasure: every copy of the ciphertext, in the WAL, in free pages or in a
    backup, becomes unreadable. Backups leave this table out (``app.backup``)."""

    __tablename__ = "subject_keys"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "tenant_key_version"],
            ["tenant_keys.tenant_id", "tenant_keys.version"],
            name="fk_subject_keys_tenant_key",
        ),
    )

    id: uuid.UUID = Field(primary_key=True)  # the object's id
    tenant_id: uuid.UUID = Field(index=True)
    tenant_key_version: int
    wrapped: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


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


class Batch(SQLModel, table=True):
    """A batch upload: its items wait in ``batch_items`` until a worker screens them."""

    __tablename__ = "batches"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_batches_tenant_idempotency"),
        Index("ix_batches_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", ondelete="CASCADE")
    client_id: str = Field(max_length=64)  # who uploaded it: results are stored as theirs
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    state: str = Field(max_length=16)  # queued | running | completed | failed | cancelled
    total: int
    invalid: int
    done: int = 0
    failed: int = 0
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    idempotency_key: str | None = Field(default=None, max_length=255)
    upload_digest: str | None = Field(default=None, max_length=64)  # keyed, never plain
    kind: str = Field(default="screen", max_length=16)  # screen | rescreen
    kb_version: str | None = Field(default=None, max_length=32)  # a re-screen's target release


class BatchItem(SQLModel, table=True):
    """One item of a batch. Its request (and client_ref) are sealed with the batch's key until
    a worker has screened it; then only the screening's id, flag, score and indicator codes stay
    here, and the request lives sealed in the screening."""

    __tablename__ = "batch_items"
    __table_args__ = (
        Index("ix_batch_items_batch_row", "batch_id", "row"),
        Index("ix_batch_items_claim", "state", "claim_expires_at"),  # expired claims
        Index("ix_batch_items_state_batch_row", "state", "batch_id", "row"),  # pending, in order
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    batch_id: uuid.UUID = Field(foreign_key="batches.id", ondelete="CASCADE")
    tenant_id: uuid.UUID
    row: int
    state: str = Field(max_length=16)  # pending | claimed | done | invalid | error | cancelled
    client_ref_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    request_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    problems: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    screening_id: uuid.UUID | None = None
    flag: str | None = Field(default=None, max_length=16)
    score: int | None = None
    top_indicators: list[str] | None = Field(default=None, sa_column=Column(JSON))
    claimed_by: str | None = Field(default=None, max_length=64)
    claim_expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    attempts: int = 0


class Webhook(SQLModel, table=True):
    """A tenant's endpoint for signed event notifications. The signing secret is sealed with
    the webhook's own key (``subject_keys``), which is destroyed when the webhook is deleted."""

    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_tenant_created", "tenant_id", "created_at", "id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", ondelete="CASCADE")
    url: str = Field(sa_column=Column(String(2000), nullable=False))
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    secret_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    disabled: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class WebhookDelivery(SQLModel, table=True):
    """One event for one webhook (the outbox): written in the transaction that caused the
    event, sent and retried by the delivery loop. The payload holds ids and counts, never
    personal data; ``last_error`` is a short constant, never a response body."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_webhook_created", "webhook_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    webhook_id: uuid.UUID = Field(foreign_key="webhooks.id", ondelete="CASCADE")
    tenant_id: uuid.UUID
    event: str = Field(max_length=64)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(max_length=16)  # pending | delivered | failed
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    last_status: int | None = None
    last_error: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    delivered_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class KnowledgeRelease(SQLModel, table=True):
    """A knowledge-base release: its files as gzipped canonical JSON. Not tenant data. The
    active release is the one activated last; every process follows it (``app.releases``)."""

    __tablename__ = "knowledge_releases"

    version: str = Field(primary_key=True, max_length=32)
    sha256: str = Field(max_length=64)
    published: str = Field(max_length=10)
    bundle: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    uploaded_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    uploaded_by: str = Field(max_length=64)
    activated_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
