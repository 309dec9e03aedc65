"""Retention: screenings older than their tenant's retention period are purged.

Purging is erasure: the screening's key is destroyed with the row, and an audit entry
``screening.purged`` (ids only) records it. Finished batches past the period are purged the
same way (``batch.purged``). Work goes in small transactions so a long purge
never holds the write lock for long. Run by ``python -m app purge`` and periodically by the
server (``PURGE_INTERVAL_SECONDS``).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import col, select

from app import audit
from app.db import Database
from app.keys import KeyRing
from app.models import Batch, BatchItem, Screening, Tenant, utcnow

BATCH = 200
log = logging.getLogger(__name__)
SYSTEM_ACTOR = "system:retention"


def purge(database: Database, *, now: datetime | None = None) -> dict[str, int]:
    """Purge every tenant's expired screenings; returns the count per tenant name."""
    now = now or utcnow()
    with database.session(write=False) as session:
        tenants = [(t.id, t.name, t.retention_days) for t in session.exec(select(Tenant)).all()]
    purged: dict[str, int] = {}
    for tenant_id, name, days in tenants:
        total = 0
        while True:
            n = _purge_batch(database, tenant_id, now - timedelta(days=days))
            total += n
            if n < BATCH:
                break
        if total:
            purged[name] = total
        _purge_uploads(database, tenant_id, now - timedelta(days=days))
    if purged:
        log.info("retention purge", extra={"count": sum(purged.values())})
    return purged


def _purge_uploads(database: Database, tenant_id: uuid.UUID, cutoff: datetime) -> None:
    """Batches past the period go too, once finished: their items (client_ref sealed under the
    batch's key) with them, and the batch's key destroyed. The screenings they produced are
    purged on their own dates above."""
    with database.session() as session:
        ids = list(
            session.exec(
                select(Batch.id)
                .where(
                    Batch.tenant_id == tenant_id,
                    col(Batch.created_at) < cutoff,
                    col(Batch.state).in_(["completed", "failed", "cancelled"]),
                )
                .with_for_update(skip_locked=True)
            ).all()
        )
        if not ids:
            return
        KeyRing.shred(session, tenant_id, ids)
        session.connection().execute(delete(BatchItem).where(col(BatchItem.batch_id).in_(ids)))
        session.connection().execute(
            delete(Batch).where(col(Batch.tenant_id) == tenant_id, col(Batch.id).in_(ids))
        )
        for batch_id in ids:
            audit.record_system(
                session, tenant_id, SYSTEM_ACTOR, "batch.purged", batch_id, object_type="batch"
            )


def _purge_batch(database: Database, tenant_id: uuid.UUID, cutoff: datetime) -> int:
    with database.session() as session:
        ids = list(
            session.exec(
                select(Screening.id)
                .where(Screening.tenant_id == tenant_id, col(Screening.created_at) < cutoff)
                .order_by(col(Screening.created_at))
                .limit(BATCH)
                # Replicas purging at once take disjoint rows (PostgreSQL; SQLite has one writer).
                .with_for_update(skip_locked=True)
            ).all()
        )
        if not ids:
            return 0
        KeyRing.shred(session, tenant_id, ids)
        session.connection().execute(
            delete(Screening).where(
                col(Screening.tenant_id) == tenant_id, col(Screening.id).in_(ids)
            )
        )
        for screening_id in ids:
            audit.record_system(session, tenant_id, SYSTEM_ACTOR, "screening.purged", screening_id)
        return len(ids)
