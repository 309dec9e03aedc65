"""Knowledge-base releases in the database, and the release each process screens with.

- ``upload`` validates a release's files with the same loader as the built-in data
  (``app.kb.loader.load_files``) and stores them as gzipped canonical JSON. The same version
  with the same content is an idempotent no-op; with other content it is a conflict, because a
  version must always mean one content (old results are reproduced from it).
- ``activate`` marks a stored release active (the one activated last is active; activating an
  older one rolls back).
- ``Releases`` is a process's view: ``active()`` is an attribute read; ``refresh()`` asks the
  database which release is active (one small indexed query) and swaps in the new one, loaded
  from its bundle; ``get(version)`` loads any stored release, so an old result can be
  reproduced. Every API process refreshes every ``KB_REFRESH_SECONDS`` and every batch worker
  between chunks, so an activation reaches all of them within seconds, without a restart.
- The release shipped with the code (``app/kb/data``) is stored on first start, and is active
  until another release is activated.
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app import audit
from app.auth import Principal
from app.db import Database
from app.errors import Conflict, NotFound, Unprocessable
from app.kb.loader import (
    Files,
    KnowledgeBase,
    KnowledgeBaseError,
    canonical_sha256,
    load_files,
    read_files,
)
from app.models import KnowledgeRelease, utcnow

log = logging.getLogger(__name__)

BUILT_IN = "system:built-in"
# Releases other than the active one kept loaded per process, least recently used dropped
# first. Cycling re-screens over more stored releases than this reloads one per call, and a
# load takes 0.2-1.1 s of CPU: requests that need one load it in a thread, one at a time.
CACHED = 8


def encode(files: Files) -> bytes:
    """The stored form: canonical JSON (sorted keys), gzipped."""
    text = json.dumps(
        {"files": files}, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return gzip.compress(text.encode(), compresslevel=6, mtime=0)


def gunzip(bundle: bytes) -> bytes:
    """The stored JSON, ``{"files": {...}}``."""
    return gzip.decompress(bundle)


def decode(bundle: bytes) -> Files:
    files: Files = json.loads(gunzip(bundle))["files"]
    return files


@dataclass(frozen=True, slots=True)
class Uploaded:
    release: KnowledgeRelease
    kb: KnowledgeBase
    created: bool


def validate(files: Any) -> KnowledgeBase:
    """Load a release from uploaded files; 422 naming the file and record when invalid."""
    if not isinstance(files, dict):
        raise Unprocessable("`files` must map file names to their content.")
    try:
        return load_files(files)
    except KnowledgeBaseError as exc:
        raise Unprocessable(f"The release is invalid: {exc}") from None


def upload(session: Session, principal: Principal, files: Files) -> Uploaded:
    kb = validate(files)
    existing = session.get(KnowledgeRelease, kb.version)
    if existing is not None:
        if existing.sha256 != kb.sha256:
            raise Conflict(
                f"Release {kb.version} exists with other content; give the release a new version."
            )
        return Uploaded(existing, kb, created=False)
    row = KnowledgeRelease(
        version=kb.version,
        sha256=kb.sha256,
        published=kb.release.published,
        bundle=encode(files),
        uploaded_by=principal.client_id,
    )
    session.add(row)
    session.flush()
    audit.record(session, principal, "knowledge.release_uploaded", None, object_type="release")
    return Uploaded(row, kb, created=True)


def get(session: Session, version: str) -> KnowledgeRelease:
    row = session.get(KnowledgeRelease, version)
    if row is None:
        raise NotFound()
    return row


def list_all(session: Session) -> list[KnowledgeRelease]:
    return list(session.exec(select(KnowledgeRelease)).all())


_ACTIVE = (
    sa_select(KnowledgeRelease.version, KnowledgeRelease.sha256)  # type: ignore[call-overload]
    .where(col(KnowledgeRelease.activated_at).is_not(None))
    .order_by(col(KnowledgeRelease.activated_at).desc(), col(KnowledgeRelease.version).desc())
    .limit(1)
)


def active_version(session: Session) -> str | None:
    """The version activated last, or None while only the built-in release exists."""
    row = session.connection().execute(_ACTIVE).first()
    return None if row is None else str(row[0])


def activate(session: Session, principal: Principal, version: str) -> KnowledgeRelease:
    row = get(session, version)
    row.activated_at = utcnow()
    session.add(row)
    audit.record(session, principal, "knowledge.release_activated", None, object_type="release")
    return row


@functools.cache
def _builtin_files() -> Files:
    return read_files()


def _builtin_bundle() -> bytes:
    return encode(_builtin_files())


class UnknownRelease(LookupError):
    pass


class Releases:
    """The releases one process knows: the built-in one, the active one and a few others."""

    def __init__(
        self,
        builtin: KnowledgeBase,
        database: Database | None = None,
        *,
        refresh_seconds: float = 0.0,
    ) -> None:
        self.builtin = builtin
        self._database = database
        self._active = builtin
        self._cache: OrderedDict[str, KnowledgeBase] = OrderedDict({builtin.version: builtin})
        self._lock = threading.Lock()
        self._loading = threading.Lock()  # one load at a time: a burst of misses queues here
        self.loads = 0  # releases loaded from the database (not from the cache)
        self._refresh_seconds = refresh_seconds
        self._refreshed = 0.0

    def active(self) -> KnowledgeBase:
        return self._active

    def cached(self, version: str) -> KnowledgeBase | None:
        with self._lock:
            kb = self._cache.get(version)
            if kb is not None:
                self._cache.move_to_end(version)
            return kb

    def get(self, version: str) -> KnowledgeBase:
        """Any stored release (loaded from the database once, then cached). A load is CPU
        work of up to a second: call this from a thread when it may not be cached."""
        kb = self.cached(version)
        if kb is not None:
            return kb
        if self._database is None:
            raise UnknownRelease(version)
        with self._loading:
            kb = self.cached(version)  # loaded by the request we waited for
            if kb is not None:
                return kb
            return self._load(version)

    def _load(self, version: str) -> KnowledgeBase:
        assert self._database is not None
        with self._database.session(write=False) as session:
            row = session.get(KnowledgeRelease, version)
            bundle = None if row is None else row.bundle
        if bundle is None:
            raise UnknownRelease(version)
        kb = load_files(decode(bundle))
        self.loads += 1
        with self._lock:
            self._cache[version] = kb
            keep = (self.builtin.version, self._active.version, version)
            evictable = [v for v in self._cache if v not in keep]
            for old in evictable[: max(0, len(self._cache) - CACHED - 1)]:
                del self._cache[old]
        return kb

    def refresh(self) -> bool:
        """Follow the database's active release; True when it changed."""
        if self._database is None:
            return False
        self._refreshed = time.monotonic()
        with self._database.session(write=False) as session:
            version = active_version(session)
        target = self.builtin.version if version is None else version
        if target == self._active.version:
            return False
        kb = self.builtin if version is None else self.get(version)
        self._active = kb
        log.info("knowledge base release activated", extra={"kb_version": kb.version})
        return True

    def maybe_refresh(self) -> None:
        """``refresh`` when the last one is older than the refresh interval (for loops)."""
        if self._refresh_seconds > 0 and (
            time.monotonic() - self._refreshed >= self._refresh_seconds
        ):
            self.refresh()

    def store_builtin(self) -> None:
        """Store the built-in release on first start, so it stays reproducible after the code
        ships a newer one. Safe when several processes start at once."""
        if self._database is None:
            return
        with self._database.session(write=False) as session:
            existing = session.get(KnowledgeRelease, self.builtin.version)
            if existing is not None:
                if existing.sha256 != self.builtin.sha256:
                    log.warning(
                        "the built-in release differs from the stored release of the same "
                        "version; give the data a new version",
                        extra={"kb_version": self.builtin.version},
                    )
                return
        # Read the data files (about a second) only to store them, and only if they are what
        # was loaded: a knowledge base handed in by the caller is not stored as the built-in.
        if canonical_sha256(_builtin_files()) != self.builtin.sha256:
            return
        try:
            with self._database.session() as session:
                session.add(
                    KnowledgeRelease(
                        version=self.builtin.version,
                        sha256=self.builtin.sha256,
                        published=self.builtin.release.published,
                        bundle=_builtin_bundle(),
                        uploaded_by=BUILT_IN,
                    )
                )
        except IntegrityError:  # another process stored it first
            pass
