"""Batch screening: uploads become items in the database, which is the work queue.

- ``create`` stores a batch and its items in one transaction: valid items ``pending`` with
  their request sealed under the batch's own key, invalid ones ``invalid`` with their problems
  (row, field, problem; never the value).
- Workers (``run_worker``; a thread in every API process, ``python -m app worker`` for more)
  ``claim`` a chunk of pending items with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
  so workers on many machines take disjoint items; SQLite has a single writer), screen them
  outside any transaction, then ``_store`` the results in one transaction that first re-checks
  the claims: an item whose lease expired and was taken over is not stored twice. A dead
  worker's claims expire after ``LEASE`` and are claimed again.
- A screened item becomes an ordinary screening (sealed with its own key, audited); the item
  keeps only the screening's id, flag, score and top indicator codes.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import and_, bindparam, func, insert, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, SQLModel, col, select

from app import audit, batch_io, rescreen, screenings, webhooks
from app.auth import Principal
from app.batch_io import Item
from app.db import Database
from app.engine import ScreeningInput
from app.errors import idempotency_key_reused
from app.kb.loader import KnowledgeBase
from app.keys import KeyRing, KeyUnavailable, SubjectKeyHandle
from app.models import Batch, BatchItem, Screening, Tenant, utcnow
from app.releases import Releases
from app.tenancy import get_owned, owned

log = logging.getLogger(__name__)

CHUNK = 200  # items per claim: stored in a handful of statements, a few milliseconds
LEASE = timedelta(seconds=120)
TABLE = "batch_items"
_INSERT_ITEMS = insert(SQLModel.metadata.tables["batch_items"])


class State:
    QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = (
        "queued",
        "running",
        "completed",
        "failed",
        "cancelled",
    )


class ItemState:
    PENDING, CLAIMED, DONE, INVALID, ERROR, CANCELLED = (
        "pending",
        "claimed",
        "done",
        "invalid",
        "error",
        "cancelled",
    )


def _item_key(keys: KeyRing, session: Session, batch: Batch) -> SubjectKeyHandle:
    return keys.subject_key(session, batch.tenant_id, batch.id, TABLE)


# --- upload --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SealedUpload:
    """A parsed upload ready to store: its items' rows sealed with a new batch key. Made
    without the database (``seal_upload``), so the API can do this CPU work off the event
    loop and hold the write transaction only to insert."""

    tenant_id: uuid.UUID
    key: SubjectKeyHandle  # the batch's key; its object id is the batch's id
    digest: str  # keyed fingerprint of the upload, for Idempotency-Key replays
    total: int
    invalid: int
    rows: list[dict[str, object]]


class UploadSlots:
    """Uploads being read at once in this process: at most ``per_tenant`` for one tenant and
    ``total`` in all. Each holds a thread and the upload's sealed items until it is stored,
    so one tenant (or a crowd) cannot take every thread or all the memory."""

    def __init__(self, *, per_tenant: int, total: int) -> None:
        self.per_tenant = per_tenant
        self.total = total
        self._lock = threading.Lock()
        self._held: dict[uuid.UUID, int] = {}

    def acquire(self, tenant_id: uuid.UUID) -> bool:
        with self._lock:
            if (
                self._held.get(tenant_id, 0) >= self.per_tenant
                or sum(self._held.values()) >= self.total
            ):
                return False
            self._held[tenant_id] = self._held.get(tenant_id, 0) + 1
            return True

    def release(self, tenant_id: uuid.UUID) -> None:
        with self._lock:
            left = self._held.get(tenant_id, 0) - 1
            if left > 0:
                self._held[tenant_id] = left
            else:
                self._held.pop(tenant_id, None)


def read_upload(
    keys: KeyRing, tenant_id: uuid.UUID, chunks: Iterable[bytes], media_type: str
) -> SealedUpload:
    """Parse an upload as it arrives, chunk by chunk, and seal each item as soon as it is
    read (no database): memory holds the sealed rows and one chunk, never the upload
    itself. UploadError if it is unreadable."""
    mac = keys.fingerprinter(tenant_id)

    def fingerprinted() -> Iterator[bytes]:
        for chunk in chunks:
            mac.update(chunk)
            yield chunk

    items = batch_io.parse_stream(fingerprinted(), media_type)
    return _seal(tenant_id, items, lambda: mac.hexdigest())


def seal_upload(
    keys: KeyRing, tenant_id: uuid.UUID, items: list[Item], upload: bytes
) -> SealedUpload:
    """Seal every item's request and client_ref with a new key for the batch (no database)."""
    return _seal(tenant_id, items, lambda: keys.fingerprint(tenant_id, upload))


def _seal(tenant_id: uuid.UUID, items: Iterable[Item], digest: Callable[[], str]) -> SealedUpload:
    batch_id = uuid.uuid4()
    (key,) = KeyRing.make_subject_keys(tenant_id, [batch_id], TABLE)
    rows = []
    invalid = 0
    for item in items:
        item_id = uuid.uuid4()
        invalid += item.request is None
        rows.append(
            {
                "id": item_id,
                "batch_id": batch_id,
                "tenant_id": tenant_id,
                "row": item.row,
                "state": ItemState.PENDING if item.request is not None else ItemState.INVALID,
                "client_ref_sealed": (
                    key.seal(f"client_ref.{item_id}", item.client_ref.encode())
                    if item.client_ref is not None
                    else None
                ),
                "request_sealed": (
                    key.seal(
                        f"request.{item_id}",
                        item.request.model_dump_json(exclude_none=True).encode(),
                    )
                    if item.request is not None
                    else None
                ),
                "problems": (
                    [{"row": p.row, "field": p.field, "problem": p.problem} for p in item.problems]
                    or None
                ),
                "attempts": 0,
            }
        )
    return SealedUpload(
        tenant_id=tenant_id,
        key=key,
        digest=digest(),  # after the last item: the whole upload has been read
        total=len(rows),
        invalid=invalid,
        rows=rows,
    )


def create(
    session: Session,
    principal: Principal,
    keys: KeyRing,
    sealed: SealedUpload,
    *,
    idempotency_key: str | None,
) -> tuple[Batch, bool]:
    """Store a batch with its items; returns it and whether it is new (an Idempotency-Key
    retry with the same upload returns the first batch; with another upload it is a 422)."""
    if sealed.tenant_id != principal.tenant_id:
        raise ValueError("an upload sealed for another tenant")
    if idempotency_key is not None:
        existing = session.exec(
            owned(Batch, principal.tenant_id).where(Batch.idempotency_key == idempotency_key)
        ).first()
        if existing is not None:
            if existing.upload_digest != sealed.digest:
                raise idempotency_key_reused("upload")
            return existing, False
    batch = Batch(
        id=sealed.key.object_id,
        tenant_id=principal.tenant_id,
        client_id=principal.client_id,
        state=State.QUEUED if sealed.invalid < sealed.total else State.COMPLETED,
        total=sealed.total,
        invalid=sealed.invalid,
        idempotency_key=idempotency_key,
        upload_digest=sealed.digest,
    )
    if batch.state == State.COMPLETED:
        batch.finished_at = batch.created_at
    session.add(batch)
    session.flush()
    keys.store_subject_keys(session, principal.tenant_id, [sealed.key])
    for start in range(0, len(sealed.rows), 1000):
        session.connection().execute(_INSERT_ITEMS, sealed.rows[start : start + 1000])
    audit.record(session, principal, "batch.created", batch.id, object_type="batch")
    return batch, True


def get(session: Session, principal: Principal, batch_id: uuid.UUID) -> Batch:
    return get_owned(session, Batch, batch_id, principal.tenant_id)


@dataclass(frozen=True, slots=True)
class Progress:
    pending: int
    done: int
    failed: int
    invalid: int
    cancelled: int


def progress(session: Session, batch: Batch) -> Progress:
    """Counts from the batch's own counters (kept by the worker in the same transactions as
    the items); only a cancelled batch is counted item by item."""
    if batch.state != State.CANCELLED:
        return Progress(
            pending=batch.total - batch.invalid - batch.done - batch.failed,
            done=batch.done,
            failed=batch.failed,
            invalid=batch.invalid,
            cancelled=0,
        )
    counts = dict(
        session.exec(
            select(BatchItem.state, func.count())
            .where(BatchItem.batch_id == batch.id)
            .group_by(BatchItem.state)
        ).all()
    )
    return Progress(
        pending=counts.get(ItemState.PENDING, 0) + counts.get(ItemState.CLAIMED, 0),
        done=counts.get(ItemState.DONE, 0),
        failed=counts.get(ItemState.ERROR, 0),
        invalid=counts.get(ItemState.INVALID, 0),
        cancelled=counts.get(ItemState.CANCELLED, 0),
    )


def cancel(session: Session, principal: Principal, batch_id: uuid.UUID) -> Batch:
    """Stop a batch: pending items are cancelled; a chunk being screened still finishes."""
    batch = get(session, principal, batch_id)
    if batch.state in (State.QUEUED, State.RUNNING):
        session.connection().execute(
            update(BatchItem)
            .where(col(BatchItem.batch_id) == batch.id, col(BatchItem.state) == ItemState.PENDING)
            .values(state=ItemState.CANCELLED, request_sealed=None)
        )
        batch.state = State.CANCELLED
        batch.finished_at = utcnow()
        session.add(batch)
        audit.record(session, principal, "batch.cancelled", batch.id, object_type="batch")
    return batch


@dataclass(frozen=True, slots=True)
class ItemResult:
    row: int
    client_ref: str | None
    state: str
    screening_id: uuid.UUID | None
    flag: str | None
    score: int | None
    top_indicators: list[str]
    problems: list[dict[str, object]]


_ITEMS = SQLModel.metadata.tables["batch_items"]
_RESULTS = (
    sa_select(
        _ITEMS.c.id,
        _ITEMS.c.row,
        _ITEMS.c.state,
        _ITEMS.c.client_ref_sealed,
        _ITEMS.c.screening_id,
        _ITEMS.c.flag,
        _ITEMS.c.score,
        _ITEMS.c.top_indicators,
        _ITEMS.c.problems,
    )
    .where(_ITEMS.c.batch_id == bindparam("batch_id"), _ITEMS.c.row > bindparam("after_row"))
    .order_by(_ITEMS.c.row)
    .limit(bindparam("limit"))
)


def results(
    session: Session, keys: KeyRing, batch: Batch, *, after_row: int, limit: int
) -> list[ItemResult]:
    """Items in upload order after ``after_row``, with their client_ref opened."""
    rows = (
        session.connection()
        .execute(_RESULTS, {"batch_id": batch.id, "after_row": after_row, "limit": limit})
        .all()
    )
    key = None
    out = []
    for item_id, row, state, ref_sealed, screening_id, flag, score, top, problems in rows:
        client_ref = None
        if ref_sealed is not None:
            key = key or _item_key(keys, session, batch)
            client_ref = key.open(f"client_ref.{item_id}", ref_sealed).decode()
        out.append(
            ItemResult(
                row=row,
                client_ref=client_ref,
                state=state,
                screening_id=screening_id,
                flag=flag,
                score=score,
                top_indicators=list(top or []),
                problems=list(problems or []),
            )
        )
    return out


def all_results(
    database: Database, keys: KeyRing, principal: Principal, batch_id: uuid.UUID, page: int = 500
) -> Iterator[ItemResult]:
    """Every item, a page per short read transaction (for streamed downloads)."""
    after = 0
    while True:
        with database.session(write=False) as session:
            batch = get(session, principal, batch_id)
            chunk = results(session, keys, batch, after_row=after, limit=page)
        yield from chunk
        if len(chunk) < page:
            return
        after = chunk[-1].row


# --- workers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    item_id: uuid.UUID
    batch_id: uuid.UUID
    tenant_id: uuid.UUID
    request_sealed: bytes | None  # None only if the row was damaged: the item then fails
    screening_id: uuid.UUID | None  # the screening a re-screen item re-screens


_ITEMS = SQLModel.metadata.tables["batch_items"]
_PENDING = _ITEMS.c.state == ItemState.PENDING
# A lease that ran out: its worker died or stalled, so the item may be claimed again.
_EXPIRED = and_(_ITEMS.c.state == ItemState.CLAIMED, _ITEMS.c.claim_expires_at < bindparam("now"))
_CLAIM = sa_select(
    _ITEMS.c.id,
    _ITEMS.c.batch_id,
    _ITEMS.c.tenant_id,
    _ITEMS.c.request_sealed,
    _ITEMS.c.screening_id,
).order_by(_ITEMS.c.batch_id, _ITEMS.c.row)


def claim(database: Database, worker: str, *, now: datetime | None = None) -> list[Claimed]:
    """Lease up to CHUNK items to ``worker``: first any whose lease expired (a worker died
    holding them), then pending ones in batch and row order. Each query walks an index in
    that order (no sort of everything pending), so a claim costs the same however large the
    batch is."""
    now = now or utcnow()
    with database.session() as session:
        conn = session.connection()
        rows = list(
            conn.execute(
                _CLAIM.where(_EXPIRED).limit(CHUNK).with_for_update(skip_locked=True),
                {"now": now},
            ).all()
        )
        if len(rows) < CHUNK:
            rows += conn.execute(
                _CLAIM.where(_PENDING).limit(CHUNK - len(rows)).with_for_update(skip_locked=True)
            ).all()
        if not rows:
            return []
        ids = [r.id for r in rows]
        conn.execute(
            update(BatchItem)
            .where(col(BatchItem.id).in_(ids))
            .values(
                state=ItemState.CLAIMED,
                claimed_by=worker,
                claim_expires_at=now + LEASE,
                attempts=BatchItem.attempts + 1,
            )
        )
        batch_ids = {r.batch_id for r in rows}
        conn.execute(
            update(Batch)
            .where(col(Batch.id).in_(batch_ids), col(Batch.state) == State.QUEUED)
            .values(state=State.RUNNING, started_at=now)
        )
        return [
            Claimed(r.id, r.batch_id, r.tenant_id, r.request_sealed, r.screening_id) for r in rows
        ]


def _compute(raw: bytes | None, kb: KnowledgeBase) -> screenings.Computed | None:
    """One item's screening, or None when it cannot be read or does not validate."""
    if raw is None:
        return None
    try:
        # ``raw`` is the request as the upload stored it (``model_dump_json``): kept as is.
        return screenings.compute(ScreeningInput.model_validate_json(raw), kb, raw)
    except ValueError:
        return None


def process(
    database: Database, releases: Releases, keys: KeyRing, worker: str, claimed: list[Claimed]
) -> int:
    """Screen claimed items (no transaction held), then store them atomically. Returns how
    many were stored by this worker."""
    if not claimed:
        return 0
    with database.session(write=False) as session:
        kinds = {
            batch_id: (kind, version)
            for batch_id, kind, version in session.exec(
                select(Batch.id, Batch.kind, Batch.kb_version).where(
                    col(Batch.id).in_({c.batch_id for c in claimed})
                )
            ).all()
        }
    uploads = [c for c in claimed if kinds.get(c.batch_id, ("screen", None))[0] != "rescreen"]
    again = [c for c in claimed if kinds.get(c.batch_id, ("screen", None))[0] == "rescreen"]
    stored = 0
    if uploads:
        stored += _process_uploads(database, releases, keys, worker, uploads)
    if again:
        versions = {c.batch_id: kinds[c.batch_id][1] for c in again}
        stored += _process_rescreens(database, releases, keys, worker, again, versions)
    return stored


def _process_uploads(
    database: Database, releases: Releases, keys: KeyRing, worker: str, claimed: list[Claimed]
) -> int:
    raws: list[bytes | None] = []
    with database.session(write=False) as session:
        batch_keys: dict[uuid.UUID, SubjectKeyHandle] = {}
        for c in claimed:
            try:
                if c.batch_id not in batch_keys:
                    batch_keys[c.batch_id] = keys.subject_key(
                        session, c.tenant_id, c.batch_id, TABLE
                    )
                sealed = c.request_sealed
                if sealed is None:
                    raws.append(None)
                    continue
                raws.append(batch_keys[c.batch_id].open(f"request.{c.item_id}", sealed))
            except KeyUnavailable:
                raws.append(None)
    kb = releases.active()
    # Keys made and results sealed here, before the write transaction: on SQLite the write
    # lock is the one thing two workers cannot share, so it is held only for the inserts.
    prepared: list[tuple[Claimed, screenings.Prepared | None]] = []
    for c, raw in zip(claimed, raws, strict=True):
        result = _compute(raw, kb)
        if result is None:
            log.error("batch item cannot be screened", extra={"object_id": str(c.item_id)})
        prepared.append((c, None if result is None else screenings.prepare(c.tenant_id, result)))
    return _store(database, keys, worker, prepared)


def _store(
    database: Database,
    keys: KeyRing,
    worker: str,
    prepared: list[tuple[Claimed, screenings.Prepared | None]],
) -> int:
    with database.session() as session:
        mine, batches = _still_held(session, worker, prepared)
        stored = 0
        for batch_id, batch in batches.items():
            updates: list[dict[str, object]] = []
            ok = [(c, p) for c, p in mine if c.batch_id == batch_id and p is not None]
            bad = [c for c, p in mine if c.batch_id == batch_id and p is None]
            screening_ids = screenings.store_prepared(
                session, batch.tenant_id, batch.client_id, keys, [p for _, p in ok if p]
            )
            for (c, p), screening_id in zip(ok, screening_ids, strict=True):
                assert p is not None
                r = p.computed
                updates.append(
                    _item_update(
                        c.item_id,
                        state=ItemState.DONE,
                        screening_id=screening_id,
                        flag=r.flag,
                        score=r.score,
                        top_indicators=list(r.top_indicators),
                    )
                )
            updates += [
                _item_update(
                    c.item_id,
                    state=ItemState.ERROR,
                    problems=[{"row": 0, "field": "", "problem": "the item could not be screened"}],
                )
                for c in bad
            ]
            if updates:
                session.connection().execute(_UPDATE_ITEM, updates)
            stored += len(updates)
            _advance(session, batch, len(ok), len(bad))
    return stored


T = TypeVar("T")


def _still_held(
    session: Session, worker: str, computed: list[tuple[Claimed, T]]
) -> tuple[list[tuple[Claimed, T]], dict[uuid.UUID, Batch]]:
    """The claims this worker still holds (locked until the transaction ends) and their
    batches. A late result of a worker whose lease was taken over is dropped here."""
    ids = [c.item_id for c, _ in computed]
    held = set(
        session.exec(
            select(BatchItem.id)
            .where(
                col(BatchItem.id).in_(ids),
                col(BatchItem.claimed_by) == worker,
                col(BatchItem.state) == ItemState.CLAIMED,
            )
            .with_for_update()
        ).all()
    )
    mine = [(c, r) for c, r in computed if c.item_id in held]
    # The batch rows are locked too (in id order), so that workers storing chunks of one batch
    # at the same time take turns: no lost counter update, and the last one sees every other
    # chunk committed when it counts what remains.
    batches = {
        b.id: b
        for b in session.exec(
            select(Batch)
            .where(col(Batch.id).in_({c.batch_id for c, _ in mine}))
            .order_by(col(Batch.id))
            .with_for_update()
        ).all()
    }
    return mine, batches


# --- re-screening after a knowledge-base release -------------------------------------------

RESCREENER = "system:rescreen"


@dataclass(frozen=True, slots=True)
class _Again:
    """A re-screen item's new result and the result it replaces."""

    computed: screenings.Computed
    before: dict[str, object]


def _screening(session: Session, c: Claimed) -> Screening | None:
    """The screening a re-screen item points at, within the item's tenant."""
    if c.screening_id is None:
        return None
    query = owned(Screening, c.tenant_id).where(col(Screening.id) == c.screening_id)
    return session.exec(query).first()


def _process_rescreens(
    database: Database,
    releases: Releases,
    keys: KeyRing,
    worker: str,
    claimed: list[Claimed],
    versions: dict[uuid.UUID, str | None],
) -> int:
    inputs: list[tuple[bytes, dict[str, object]] | None] = []
    with database.session(write=False) as session:
        for c in claimed:
            row = _screening(session, c)
            if row is None:
                inputs.append(None)  # erased since the batch was made
                continue
            try:
                key = keys.subject_key(session, row.tenant_id, row.id, screenings.TABLE)
                before = json.loads(key.open("result", row.result_sealed))
                inputs.append((key.open("request", row.request_sealed), before))
            except KeyUnavailable:
                inputs.append(None)
    out: list[tuple[Claimed, _Again | None]] = []
    for c, found in zip(claimed, inputs, strict=True):
        version = versions.get(c.batch_id)
        kb = releases.get(version) if version else releases.active()
        computed = None if found is None else _compute(found[0], kb)
        out.append((c, None if computed is None else _Again(computed, found[1])))  # type: ignore[index]
    with database.session() as session:
        mine, batches = _still_held(session, worker, out)
        stored = 0
        for batch_id, batch in batches.items():
            updates: list[dict[str, object]] = []
            ok = failed = 0
            for c, again in mine:
                if c.batch_id != batch_id:
                    continue
                row = _screening(session, c)
                if again is None or row is None:
                    failed += 1
                    updates.append(
                        _item_update(
                            c.item_id,
                            state=ItemState.ERROR,
                            screening_id=c.screening_id,
                            problems=[
                                {
                                    "row": 0,
                                    "field": "",
                                    "problem": "the screening was erased or cannot be read",
                                }
                            ],
                        )
                    )
                    continue
                rescreen.apply(
                    session,
                    keys,
                    row,
                    again.computed,
                    again.before,
                    actor=RESCREENER,
                    batch_id=batch_id,
                )
                ok += 1
                updates.append(
                    _item_update(
                        c.item_id,
                        state=ItemState.DONE,
                        screening_id=row.id,
                        flag=again.computed.flag,
                        score=again.computed.score,
                        top_indicators=list(again.computed.top_indicators),
                    )
                )
            if updates:
                session.connection().execute(_UPDATE_ITEM, updates)
            stored += len(updates)
            _advance(session, batch, ok, failed)
    return stored


def schedule_rescreens(session: Session, version: str, sha256: str) -> int:
    """After ``version`` is activated: one re-screen batch per tenant that opted in, over its
    screenings made with another release. Earlier re-screens still pending are cancelled (the
    new release supersedes them). Returns the number of screenings queued."""
    queued = 0
    tenants = session.exec(select(Tenant.id).where(col(Tenant.rescreen_on_release))).all()
    for tenant_id in tenants:
        _supersede(session, tenant_id)
        ids = list(
            session.scalars(
                owned(Screening, tenant_id)
                .with_only_columns(col(Screening.id))
                .where(col(Screening.kb_sha256) != sha256)
                .order_by(col(Screening.created_at), col(Screening.id))
            ).all()
        )
        if not ids:
            continue
        batch = Batch(
            tenant_id=tenant_id,
            client_id=RESCREENER,
            state=State.QUEUED,
            total=len(ids),
            invalid=0,
            kind="rescreen",
            kb_version=version,
        )
        session.add(batch)
        session.flush()
        rows = [
            {
                "id": uuid.uuid4(),
                "batch_id": batch.id,
                "tenant_id": tenant_id,
                "row": n,
                "state": ItemState.PENDING,
                "screening_id": screening_id,
                "attempts": 0,
            }
            for n, screening_id in enumerate(ids, start=1)
        ]
        for start in range(0, len(rows), 1000):
            session.connection().execute(_INSERT_ITEMS, rows[start : start + 1000])
        audit.record_system(
            session, tenant_id, RESCREENER, "batch.created", batch.id, object_type="batch"
        )
        queued += len(ids)
    return queued


def _supersede(session: Session, tenant_id: uuid.UUID) -> None:
    pending = session.exec(
        owned(Batch, tenant_id).where(
            col(Batch.kind) == "rescreen", col(Batch.state).in_([State.QUEUED, State.RUNNING])
        )
    ).all()
    for batch in pending:
        session.connection().execute(
            update(BatchItem)
            .where(col(BatchItem.batch_id) == batch.id, col(BatchItem.state) == ItemState.PENDING)
            .values(state=ItemState.CANCELLED)
        )
        batch.state = State.CANCELLED
        batch.finished_at = utcnow()
        session.add(batch)


_ITEM_COLUMNS = ("state", "screening_id", "flag", "score", "top_indicators", "problems")
_UPDATE_ITEM = (
    update(SQLModel.metadata.tables["batch_items"])
    .where(SQLModel.metadata.tables["batch_items"].c.id == bindparam("item_id"))
    .values(
        request_sealed=None,
        claimed_by=None,
        claim_expires_at=None,
        **{c: bindparam(f"new_{c}") for c in _ITEM_COLUMNS},
    )
)


def _item_update(item_id: uuid.UUID, **values: object) -> dict[str, object]:
    row: dict[str, object] = {f"new_{c}": values.get(c) for c in _ITEM_COLUMNS}
    row["item_id"] = item_id
    return row


def _advance(session: Session, batch: Batch, done: int, failed: int) -> None:
    """Count a stored chunk into its batch (locked by ``_still_held``) and complete the batch
    when nothing is left. The counters are exact (every item is counted once, when its claim
    is turned into a result under that lock), so the items are counted only when the
    counters say none remain, to confirm it before the completion is announced."""
    batch.done += done
    batch.failed += failed
    session.add(batch)
    if batch.state != State.RUNNING or batch.total - batch.invalid - batch.done - batch.failed:
        return
    remaining = session.exec(
        select(func.count())
        .select_from(BatchItem)
        .where(
            col(BatchItem.batch_id) == batch.id,
            col(BatchItem.state).in_([ItemState.PENDING, ItemState.CLAIMED]),
        )
    ).one()
    if remaining == 0:
        batch.state = State.COMPLETED
        batch.finished_at = utcnow()
        audit.record_system(
            session,
            batch.tenant_id,
            "system:batch-worker",
            "batch.completed",
            batch.id,
            object_type="batch",
        )
        _announce_completion(session, batch)


def _announce_completion(session: Session, batch: Batch) -> None:
    """The ``batch.completed`` webhook, queued in the same transaction (outbox)."""
    webhooks.enqueue(
        session,
        batch.tenant_id,
        "batch.completed",
        {
            "batch_id": str(batch.id),
            "state": batch.state,
            "total": batch.total,
            "done": batch.done,
            "failed": batch.failed,
            "invalid": batch.invalid,
        },
    )


def work_once(database: Database, releases: Releases, keys: KeyRing, worker: str) -> int:
    """Claim and process one chunk; returns the number of items stored (0: nothing to do)."""
    return process(database, releases, keys, worker, claim(database, worker))


_ANY_WORK = sa_select(_ITEMS.c.id).where(or_(_PENDING, _EXPIRED)).limit(1)


def has_work(database: Database, *, now: datetime | None = None) -> bool:
    """Whether any item waits to be claimed: a read (no write lock), so idle workers can ask
    often."""
    with database.session(write=False) as session:
        found = session.connection().execute(_ANY_WORK, {"now": now or utcnow()}).first()
    return found is not None


IDLE_SECONDS = 0.1  # how often an idle worker asks whether there is work
ERROR_PAUSE_SECONDS = 1.0


def run_worker(
    database: Database,
    releases: Releases,
    keys: KeyRing,
    stop: threading.Event,
    *,
    worker: str | None = None,
    idle_seconds: float = IDLE_SECONDS,
    wake: threading.Event | None = None,
) -> None:
    """Work until ``stop`` is set: chunk after chunk while there is work. Idle, it asks again
    every ``idle_seconds``, or as soon as ``wake`` is set (the API process sets it once a new
    batch is committed, so its own worker starts at once)."""
    name = worker or f"worker-{uuid.uuid4().hex[:12]}"
    bell = wake or threading.Event()
    while not stop.is_set():
        try:
            releases.maybe_refresh()  # follow the active knowledge-base release
            if not has_work(database) or work_once(database, releases, keys, name) == 0:
                bell.wait(idle_seconds)
                bell.clear()
        except Exception as exc:  # logged; the claims expire and are retried
            log.error("batch worker error", extra={"error_type": type(exc).__name__})
            stop.wait(ERROR_PAUSE_SECONDS)
