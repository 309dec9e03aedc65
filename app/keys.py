"""Envelope encryption of personal data: master key -> tenant keys -> one key per object.

- The master key (settings) wraps each tenant's data keys; it is never stored.
- A tenant key (``tenant_keys``, versioned) wraps the tenant's subject keys.
- A subject key (``subject_keys``, one per screening) seals that screening's request and result.

Erasing a screening deletes its subject key in the same transaction, so every other copy of
its ciphertext (WAL frames, free pages, PostgreSQL dead tuples, backups, which leave the key
tables out) can no longer be opened. Every wrap and seal binds its place as associated data:
tenant, table, column, object id, key version.

Unwrapped tenant keys are cached per process; which version is current is read in each write
transaction (``FOR SHARE`` on PostgreSQL) so a rotation in another process is never missed.
"""

from __future__ import annotations

import hmac
import threading
import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col
from sqlmodel import select as select_model

from app.auth import SecretHasher
from app.crypto import DecryptionError, aad, key_id, new_key, open_sealed, seal
from app.models import Client, TenantKey, utcnow

_TENANT_KEYS = SQLModel.metadata.tables["tenant_keys"]
_SUBJECT_KEYS = SQLModel.metadata.tables["subject_keys"]
_INSERT_SUBJECT = insert(_SUBJECT_KEYS)
# Constant statements with bound parameters: compiled once (the ORM equivalent cost more than
# the screening itself).
_CURRENT_TENANT_KEY = (
    select(_TENANT_KEYS.c.version, _TENANT_KEYS.c.master_key_id, _TENANT_KEYS.c.wrapped)
    .where(_TENANT_KEYS.c.tenant_id == bindparam("tenant_id"))
    .order_by(_TENANT_KEYS.c.version.desc())
    .limit(1)
    .with_for_update(read=True)
)
_SUBJECT_KEY = (
    select(
        _SUBJECT_KEYS.c.tenant_key_version,
        _SUBJECT_KEYS.c.wrapped,
        _TENANT_KEYS.c.master_key_id,
        _TENANT_KEYS.c.wrapped,
    )
    .join(
        _TENANT_KEYS,
        (_TENANT_KEYS.c.tenant_id == _SUBJECT_KEYS.c.tenant_id)
        & (_TENANT_KEYS.c.version == _SUBJECT_KEYS.c.tenant_key_version),
    )
    .where(
        _SUBJECT_KEYS.c.id == bindparam("object_id"),
        _SUBJECT_KEYS.c.tenant_id == bindparam("tenant_id"),
    )
)


class KeyUnavailable(Exception):
    """An object's key is gone (erased) or cannot be unwrapped; its data cannot be read."""


@dataclass(frozen=True, slots=True)
class SubjectKeyHandle:
    """An unwrapped subject key and the place it belongs to."""

    tenant_id: uuid.UUID
    object_id: uuid.UUID
    table: str
    key: bytes

    def seal(self, column: str, plaintext: bytes) -> bytes:
        return seal(self.key, plaintext, aad(self.tenant_id, self.table, column, self.object_id))

    def open(self, column: str, sealed: bytes) -> bytes:
        try:
            return open_sealed(
                self.key, sealed, aad(self.tenant_id, self.table, column, self.object_id)
            )
        except DecryptionError:
            raise KeyUnavailable() from None


def _tenant_aad(tenant_id: uuid.UUID, version: int) -> bytes:
    return aad("tenant-key", tenant_id, version)


def _subject_aad(tenant_id: uuid.UUID, object_id: uuid.UUID, version: int) -> bytes:
    return aad("subject-key", tenant_id, object_id, version)


class KeyRing:
    """The process's view of the key hierarchy under one master key."""

    def __init__(self, master_key: bytes) -> None:
        self._master = master_key
        self.master_key_id = key_id(master_key)
        self._cache: dict[tuple[uuid.UUID, int, bytes], bytes] = {}
        self._lock = threading.Lock()

    def fingerprint(self, tenant_id: uuid.UUID, data: bytes) -> str:
        """A keyed digest of ``data`` for one tenant (idempotency checks of uploads): equal
        inputs match, but without the master key nobody can test a guess against it."""
        mac = self.fingerprinter(tenant_id)
        mac.update(data)
        return mac.hexdigest()

    def fingerprinter(self, tenant_id: uuid.UUID) -> hmac.HMAC:
        """The same digest fed piece by piece (``update``), for uploads read as a stream."""
        tenant_key = hmac.new(self._master, b"fingerprint|" + tenant_id.bytes, "sha256").digest()
        return hmac.new(tenant_key, digestmod="sha256")

    # --- tenant keys ---------------------------------------------------------------------

    def _unwrap_tenant(
        self, tenant_id: uuid.UUID, version: int, master_key_id: str, wrapped: bytes
    ) -> bytes:
        cache_key = (tenant_id, version, wrapped)
        key = self._cache.get(cache_key)
        if key is not None:
            return key
        if master_key_id != self.master_key_id:
            raise KeyUnavailable()
        try:
            key = open_sealed(self._master, wrapped, _tenant_aad(tenant_id, version))
        except DecryptionError:
            raise KeyUnavailable() from None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[cache_key] = key
        return key

    def _current_tenant_key(self, session: Session, tenant_id: uuid.UUID) -> tuple[int, bytes]:
        """The tenant's newest key, created on first use. Locked FOR SHARE on PostgreSQL so a
        concurrent rotation cannot delete it before this transaction commits."""
        row = session.connection().execute(_CURRENT_TENANT_KEY, {"tenant_id": tenant_id}).first()
        if row is None:
            created = self._create_tenant_key(session, tenant_id, 1)
            version, master_key_id, wrapped = (
                created.version,
                created.master_key_id,
                created.wrapped,
            )
        else:
            version, master_key_id, wrapped = row
        return version, self._unwrap_tenant(tenant_id, version, master_key_id, wrapped)

    def _create_tenant_key(self, session: Session, tenant_id: uuid.UUID, version: int) -> TenantKey:
        key = new_key()
        row = TenantKey(
            tenant_id=tenant_id,
            version=version,
            master_key_id=self.master_key_id,
            wrapped=seal(self._master, key, _tenant_aad(tenant_id, version)),
            created_at=utcnow(),
        )
        try:
            with session.begin_nested():  # a concurrent first request may create it too
                session.add(row)
        except IntegrityError:
            existing = session.get(TenantKey, (tenant_id, version))
            if existing is None:
                raise
            return existing
        return row

    # --- subject keys --------------------------------------------------------------------

    def new_subject_key(
        self, session: Session, tenant_id: uuid.UUID, object_id: uuid.UUID, table: str
    ) -> SubjectKeyHandle:
        """Create, wrap and store a key for a new object, in the caller's transaction."""
        return self.new_subject_keys(session, tenant_id, [object_id], table)[0]

    def new_subject_keys(
        self, session: Session, tenant_id: uuid.UUID, object_ids: list[uuid.UUID], table: str
    ) -> list[SubjectKeyHandle]:
        """Keys for new objects of one tenant: one tenant-key lookup, one insert."""
        handles = self.make_subject_keys(tenant_id, object_ids, table)
        self.store_subject_keys(session, tenant_id, handles)
        return handles

    @staticmethod
    def make_subject_keys(
        tenant_id: uuid.UUID, object_ids: list[uuid.UUID], table: str
    ) -> list[SubjectKeyHandle]:
        """Fresh keys for new objects, not stored yet. Data can be sealed with them before
        the write transaction begins (the batch worker seals a chunk outside it); they must be
        stored with ``store_subject_keys`` in the transaction that stores the data, which
        wraps them with the tenant key current at that moment."""
        return [
            SubjectKeyHandle(tenant_id, object_id, table, new_key()) for object_id in object_ids
        ]

    def store_subject_keys(
        self, session: Session, tenant_id: uuid.UUID, handles: list[SubjectKeyHandle]
    ) -> None:
        """Wrap keys made by ``make_subject_keys`` and store them, in the caller's
        transaction (one tenant-key lookup, one insert)."""
        if not handles:
            return
        if any(h.tenant_id != tenant_id for h in handles):
            raise ValueError("subject keys of another tenant")
        version, tenant_key = self._current_tenant_key(session, tenant_id)
        rows = [
            {
                "id": h.object_id,
                "tenant_id": tenant_id,
                "tenant_key_version": version,
                "wrapped": seal(tenant_key, h.key, _subject_aad(tenant_id, h.object_id, version)),
            }
            for h in handles
        ]
        session.connection().execute(_INSERT_SUBJECT, rows)

    def subject_key(
        self, session: Session, tenant_id: uuid.UUID, object_id: uuid.UUID, table: str
    ) -> SubjectKeyHandle:
        """The object's key; KeyUnavailable when it was erased or does not open."""
        row = (
            session.connection()
            .execute(_SUBJECT_KEY, {"object_id": object_id, "tenant_id": tenant_id})
            .first()
        )
        if row is None:
            raise KeyUnavailable()
        version, wrapped, master_key_id, tenant_wrapped = row
        tenant_key = self._unwrap_tenant(tenant_id, version, master_key_id, tenant_wrapped)
        try:
            key = open_sealed(tenant_key, wrapped, _subject_aad(tenant_id, object_id, version))
        except DecryptionError:
            raise KeyUnavailable() from None
        return SubjectKeyHandle(tenant_id, object_id, table, key)

    @staticmethod
    def shred(session: Session, tenant_id: uuid.UUID, object_ids: list[uuid.UUID]) -> int:
        """Delete objects' keys: their data can never be opened again. Returns how many."""
        if not object_ids:
            return 0
        result = session.connection().execute(
            delete(_SUBJECT_KEYS).where(
                _SUBJECT_KEYS.c.tenant_id == tenant_id, _SUBJECT_KEYS.c.id.in_(object_ids)
            )
        )
        return int(result.rowcount or 0)

    # --- rotation ------------------------------------------------------------------------

    def rotate_tenant(self, session: Session, tenant_id: uuid.UUID) -> tuple[int, int]:
        """Give the tenant a new key version, re-wrap every subject key with it and destroy
        the older versions, in the caller's transaction. Returns (new version, re-wrapped)."""
        versions = session.exec(
            select_model(TenantKey)
            .where(TenantKey.tenant_id == tenant_id)
            .order_by(col(TenantKey.version))
            .with_for_update()
        ).all()
        old = {
            v.version: self._unwrap_tenant(tenant_id, v.version, v.master_key_id, v.wrapped)
            for v in versions
        }
        new_version = (versions[-1].version if versions else 0) + 1
        created = self._create_tenant_key(session, tenant_id, new_version)
        new = self._unwrap_tenant(tenant_id, new_version, created.master_key_id, created.wrapped)
        session.flush()
        rows = session.execute(
            select(_SUBJECT_KEYS.c.id, _SUBJECT_KEYS.c.tenant_key_version, _SUBJECT_KEYS.c.wrapped)
            .where(_SUBJECT_KEYS.c.tenant_id == tenant_id)
            .with_for_update()
        ).all()
        for object_id, version, wrapped in rows:
            try:
                key = open_sealed(
                    old[version], wrapped, _subject_aad(tenant_id, object_id, version)
                )
            except DecryptionError:
                raise KeyUnavailable() from None
            session.connection().execute(
                update(_SUBJECT_KEYS)
                .where(_SUBJECT_KEYS.c.id == object_id)
                .values(
                    tenant_key_version=new_version,
                    wrapped=seal(new, key, _subject_aad(tenant_id, object_id, new_version)),
                )
            )
        if old:
            session.connection().execute(
                delete(_TENANT_KEYS).where(
                    _TENANT_KEYS.c.tenant_id == tenant_id,
                    _TENANT_KEYS.c.version.in_(list(old)),
                )
            )
        return new_version, len(rows)

    def rewrap_master(self, session: Session, new_master: bytes) -> int:
        """Re-wrap every tenant key under a new master key, in the caller's transaction.
        Returns how many; the caller then configures the new master key."""
        rows = session.exec(select_model(TenantKey).with_for_update()).all()
        new_id = key_id(new_master)
        for row in rows:
            key = self._unwrap_tenant(row.tenant_id, row.version, row.master_key_id, row.wrapped)
            row.wrapped = seal(new_master, key, _tenant_aad(row.tenant_id, row.version))
            row.master_key_id = new_id
            session.add(row)
        # Client secrets' peppers are sealed under a key derived from the master key too.
        old_hasher, new_hasher = SecretHasher(self._master), SecretHasher(new_master)
        for client in session.exec(select_model(Client).with_for_update()).all():
            rewrapped = old_hasher.rewrap(
                client.secret_hash, client_id=client.client_id, new=new_hasher
            )
            if rewrapped is not None:
                client.secret_hash = rewrapped
                session.add(client)
        session.flush()
        return len(rows)
