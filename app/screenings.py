"""Screening use cases: screen and store, read, list, erase. No web framework here.

The caller's session is the transaction (committed by the request's session dependency); these
functions never commit. Every query goes through ``app.tenancy``. The request and the result are
stored sealed with the screening's own key (``app.keys``); erasure deletes that key.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col

from app import audit, webhooks
from app.auth import Principal
from app.engine import ScreeningInput, screen
from app.errors import Conflict, Gone, idempotency_key_reused
from app.kb.loader import KnowledgeBase
from app.keys import KeyRing, KeyUnavailable, SubjectKeyHandle
from app.models import Screening, utcnow
from app.pagination import keyset_page
from app.tenancy import get_owned, owned


@dataclass(frozen=True, slots=True)
class StoredScreening:
    """A screening's identity and its result as JSON (serialised once, when computed).
    ``id`` is None when nothing was stored."""

    id: uuid.UUID | None
    created_at: datetime
    result_json: str

    def to_json(self) -> bytes:
        """The API representation: identity first, then the result's fields."""
        ident = f'"{self.id}"' if self.id is not None else "null"
        # The same RFC 3339 form pydantic writes elsewhere in the API ("Z" for UTC).
        stamp = self.created_at.isoformat().replace("+00:00", "Z")
        head = f'{{"id":{ident},"created_at":"{stamp}",'
        return (head + self.result_json[1:]).encode()


# Constant statements with bound parameters: compiled once, cached by SQLAlchemy, and free of
# the ORM's per-row bookkeeping (which cost more than the screening itself).
_INSERT_SCREENING = insert(SQLModel.metadata.tables["screenings"])


@dataclass(frozen=True, slots=True)
class ListFilters:
    flag: str | None = None
    issuing_country: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


TABLE = "screenings"
log = logging.getLogger(__name__)


def _stored(session: Session, keys: KeyRing, row: Screening) -> StoredScreening:
    result = _open(session, keys, row, "result", row.result_sealed).decode()
    return StoredScreening(id=row.id, created_at=row.created_at, result_json=result)


def _open(session: Session, keys: KeyRing, row: Screening, column: str, sealed: bytes) -> bytes:
    try:
        return keys.subject_key(session, row.tenant_id, row.id, TABLE).open(column, sealed)
    except KeyUnavailable:
        # Tampered, moved, or its key destroyed: say so without detail; the log has the id.
        log.error("stored screening cannot be opened", extra={"object_id": str(row.id)})
        raise Gone("This screening's stored data cannot be read.") from None


def create(
    session: Session,
    principal: Principal,
    request: ScreeningInput,
    kb: KnowledgeBase,
    keys: KeyRing,
    *,
    idempotency_key: str | None = None,
    store: bool = True,
    computed: Computed | None = None,
) -> tuple[StoredScreening, bool]:
    """Screen and (unless ``store`` is false) store. Returns the screening and whether it is
    new; a retry with the same Idempotency-Key and body returns the first one. ``computed``:
    the result of ``compute(request, kb)``, when the caller computed it already (the API does,
    in a thread, before its transaction)."""
    request_json = request.model_dump_json(exclude_none=True).encode()
    if idempotency_key is not None and store:
        existing = _by_key(session, principal.tenant_id, idempotency_key)
        if existing is not None:
            return _replay(session, keys, existing, request_json), False
    if computed is None or computed.request_json != request_json:
        computed = compute(request, kb, request_json)
    result_json = computed.result_json
    created_at = utcnow()
    if not store:
        return StoredScreening(id=None, created_at=created_at, result_json=result_json), True
    screening_id = uuid.uuid4()
    key = keys.new_subject_key(session, principal.tenant_id, screening_id, TABLE)
    row = _row(principal.tenant_id, key, created_at, computed)
    row["idempotency_key"] = idempotency_key
    if idempotency_key is None:
        session.connection().execute(_INSERT_SCREENING, row)
    else:
        try:
            with session.begin_nested():  # a concurrent twin may win the unique key
                session.connection().execute(_INSERT_SCREENING, row)
        except IntegrityError:
            winner = _by_key(session, principal.tenant_id, idempotency_key)
            if winner is None:
                raise Conflict(
                    "A request with this Idempotency-Key is in progress; retry."
                ) from None
            KeyRing.shred(session, principal.tenant_id, [screening_id])
            return _replay(session, keys, winner, request_json), False
    audit.record(session, principal, "screening.created", screening_id)
    webhooks.screening_created(
        session, principal.tenant_id, screening_id, computed.flag, computed.score, created_at
    )
    return StoredScreening(id=screening_id, created_at=created_at, result_json=result_json), True


@dataclass(frozen=True, slots=True)
class Computed:
    """A screening's result as stored: the JSON and the clear metadata beside it. Small and
    picklable, so a batch worker can compute it in another process."""

    request_json: bytes
    result_json: str
    flag: str
    score: int
    issuing_country: str | None
    engine_version: str
    kb_version: str
    kb_sha256: str
    top_indicators: tuple[str, ...]


TOP_INDICATORS = 3


def compute(
    request: ScreeningInput, kb: KnowledgeBase, request_json: bytes | None = None
) -> Computed:
    result = screen(request, kb)
    ranked = sorted(result.indicators, key=lambda i: -i.points)
    return Computed(
        request_json=request_json or request.model_dump_json(exclude_none=True).encode(),
        result_json=result.model_dump_json(),
        flag=result.flag.value,
        score=result.score,
        issuing_country=request.effective()[1].issuing_country,
        engine_version=result.engine_version,
        kb_version=result.knowledge_base.version,
        kb_sha256=result.knowledge_base.sha256,
        top_indicators=tuple(i.code for i in ranked[:TOP_INDICATORS]),
    )


@dataclass(frozen=True, slots=True)
class Prepared:
    """A computed screening sealed with its new key, ready to insert: what
    ``store_prepared`` writes. Made outside the write transaction, so the worker holds the
    write lock only for the inserts."""

    key: SubjectKeyHandle
    row: dict[str, object]
    computed: Computed


def prepare(tenant_id: uuid.UUID, computed: Computed) -> Prepared:
    """A new screening's key and sealed row (CPU only: no database)."""
    (key,) = KeyRing.make_subject_keys(tenant_id, [uuid.uuid4()], TABLE)
    return Prepared(key, _row(tenant_id, key, utcnow(), computed), computed)


def store_prepared(
    session: Session, tenant_id: uuid.UUID, actor: str, keys: KeyRing, prepared: list[Prepared]
) -> list[uuid.UUID]:
    """Store screenings computed and sealed outside the transaction (the batch worker does
    the CPU work first and holds the write lock only to store), in a few statements. Audited
    like any other."""
    if not prepared:
        return []
    keys.store_subject_keys(session, tenant_id, [p.key for p in prepared])
    session.connection().execute(_INSERT_SCREENING, [p.row for p in prepared])
    ids = [p.key.object_id for p in prepared]
    audit.record_many(session, tenant_id, actor, "screening.created", ids)
    return ids


def _row(
    tenant_id: uuid.UUID, key: SubjectKeyHandle, created_at: datetime, c: Computed
) -> dict[str, object]:
    """A new screening's row, request and result sealed with its own key."""
    return {
        "id": key.object_id,
        "tenant_id": tenant_id,
        "created_at": created_at,
        "flag": c.flag,
        "score": c.score,
        "issuing_country": c.issuing_country,
        "engine_version": c.engine_version,
        "kb_version": c.kb_version,
        "kb_sha256": c.kb_sha256,
        "request_sealed": key.seal("request", c.request_json),
        "result_sealed": key.seal("result", c.result_json.encode()),
        "idempotency_key": None,
    }


def _by_key(session: Session, tenant_id: uuid.UUID, key: str) -> Screening | None:
    return session.exec(owned(Screening, tenant_id).where(Screening.idempotency_key == key)).first()


def _replay(
    session: Session, keys: KeyRing, row: Screening, request_json: bytes
) -> StoredScreening:
    first = _open(session, keys, row, "request", row.request_sealed)
    if not hmac.compare_digest(first, request_json):
        raise idempotency_key_reused("request body")
    return _stored(session, keys, row)


def get(
    session: Session, principal: Principal, keys: KeyRing, screening_id: uuid.UUID
) -> StoredScreening:
    return _stored(session, keys, get_owned(session, Screening, screening_id, principal.tenant_id))


def get_with_input(
    session: Session, principal: Principal, keys: KeyRing, screening_id: uuid.UUID
) -> tuple[StoredScreening, bytes]:
    """The screening and the request it was computed from (the report and re-screening need
    both)."""
    row = get_owned(session, Screening, screening_id, principal.tenant_id)
    return _stored(session, keys, row), _open(session, keys, row, "request", row.request_sealed)


def list_page(
    session: Session,
    principal: Principal,
    filters: ListFilters,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[Screening], str | None]:
    """Newest first, keyset-paginated on (created_at, id)."""
    query = owned(Screening, principal.tenant_id)
    if filters.flag:
        query = query.where(Screening.flag == filters.flag)
    if filters.issuing_country:
        query = query.where(Screening.issuing_country == filters.issuing_country)
    if filters.created_after:
        query = query.where(col(Screening.created_at) >= filters.created_after)
    if filters.created_before:
        query = query.where(col(Screening.created_at) < filters.created_before)
    return keyset_page(
        session, query, Screening.created_at, Screening.id, limit=limit, cursor=cursor
    )


def erase(session: Session, principal: Principal, screening_id: uuid.UUID) -> None:
    """Delete input, result and the screening's key; keep an audit tombstone without personal
    data."""
    row = get_owned(session, Screening, screening_id, principal.tenant_id)
    KeyRing.shred(session, principal.tenant_id, [row.id])
    session.delete(row)
    audit.record(session, principal, "screening.erased", screening_id)
