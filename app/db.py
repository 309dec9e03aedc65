"""Engines per dialect and the request-scoped session.

SQLite: WAL, a busy timeout, foreign keys and secure_delete on every connection, and write
transactions that begin IMMEDIATE so a read-modify-write cannot lose an update to a concurrent
writer (pysqlite would otherwise run the first SELECT outside any transaction). Reads use a
second engine whose transactions begin DEFERRED, so they never wait for the write lock.
PostgreSQL uses one engine for both, at its default READ COMMITTED isolation: code there that
reads a row and writes what it read must lock it (``with_for_update()``) or write atomically
(``UPDATE ... SET n = n + 1``); tests/test_concurrency.py shows the difference.

A server process checkpoints the SQLite WAL from a background thread (``Checkpointer``) rather
than letting the commit that crosses the WAL threshold do it: a checkpoint writes the WAL back
into the database file and fsyncs it, which took milliseconds, and on the request path that
stalled every request queued behind it. The checkpoint needs no GIL while SQLite works.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

SQLITE_BUSY_TIMEOUT_MS = 15_000
# Seconds to wait for a pooled connection before ``sqlalchemy.exc.TimeoutError`` (the server
# answers 503 with Retry-After); SQLAlchemy's default of 30 s held every request that long.
POOL_TIMEOUT_S = 1.0
CHECKPOINT_INTERVAL_S = 0.2
RESTART_AFTER_FRAMES = 2000  # about 8 MB of WAL

log = logging.getLogger(__name__)


class Checkpointer:
    """Checkpoints one SQLite file's WAL every ``interval`` seconds on its own connection and
    thread. PASSIVE checkpoints never wait for the lock or block a writer; once everything has
    been copied back, the next writer starts the WAL from its beginning again. ``stop()`` ends
    with a TRUNCATE checkpoint so a cleanly stopped server leaves an empty WAL behind."""

    def __init__(self, path: str, interval: float = CHECKPOINT_INTERVAL_S) -> None:
        self._path = path
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            while not self._stop.wait(self._interval):
                if self._checkpoint(conn, "PASSIVE") >= RESTART_AFTER_FRAMES:
                    # Under a steady stream of writes a PASSIVE checkpoint never catches up
                    # with the last frame, and the WAL is only reused from its start once it
                    # has: RESTART copies the few frames written since, holding writers off
                    # for that moment, so the file stops growing.
                    self._checkpoint(conn, "RESTART")
            self._checkpoint(conn, "TRUNCATE")
        finally:
            conn.close()

    @staticmethod
    def _checkpoint(conn: sqlite3.Connection, mode: str) -> int:
        """Checkpoint; return the number of frames in the WAL, as SQLite reports it."""
        try:
            row = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as exc:  # never fatal: the next round retries
            log.warning("wal checkpoint failed", extra={"error_type": type(exc).__name__})
            return 0
        return int(row[1])  # (busy, frames in the WAL, frames copied back)


@dataclass(frozen=True, slots=True)
class Database:
    writer: Engine
    reader: Engine
    checkpointer: Checkpointer | None = field(default=None, compare=False)

    @contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on any exception."""
        with Session(self.writer if write else self.reader, expire_on_commit=False) as session:
            try:
                yield session
                if write:
                    session.commit()
                # A read ends with close(), which releases the connection and its transaction
                # but leaves loaded objects usable (rollback() would expire them).
            except BaseException:
                session.rollback()
                raise

    def start(self) -> None:
        """Start background work (the SQLite checkpointer, when there is one)."""
        if self.checkpointer is not None:
            self.checkpointer.start()

    def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()


def _sqlite_engine(
    url: str, *, immediate: bool, autocheckpoint: bool = True, pool_timeout: float = POOL_TIMEOUT_S
) -> Engine:
    parsed = make_url(url)
    memory = parsed.database in (None, "", ":memory:")
    if not memory and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {
        "hide_parameters": True,
        "connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    }
    if memory:
        kwargs["poolclass"] = StaticPool
    else:
        kwargs["pool_timeout"] = pool_timeout
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so BEGIN is ours to emit.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA secure_delete=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        if not autocheckpoint:
            cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def create_database(
    url: str, *, background_checkpoint: bool = False, pool_timeout: float = POOL_TIMEOUT_S
) -> Database:
    """``background_checkpoint``: for a long-running server on a SQLite file, checkpoint the
    WAL from a thread started by ``Database.start()`` instead of on commit. ``pool_timeout``:
    seconds to wait for a free pooled connection."""
    if url.startswith("sqlite"):
        path = make_url(url).database
        memory = path in (None, "", ":memory:")
        background = background_checkpoint and not memory
        writer = _sqlite_engine(
            url, immediate=True, autocheckpoint=not background, pool_timeout=pool_timeout
        )
        # An in-memory database exists once per connection: readers must share the writer's.
        reader = writer
        if not memory:
            reader = _sqlite_engine(
                url, immediate=False, autocheckpoint=not background, pool_timeout=pool_timeout
            )
        checkpointer = Checkpointer(path) if background and path else None
        return Database(writer=writer, reader=reader, checkpointer=checkpointer)
    engine = create_engine(url, hide_parameters=True, pool_pre_ping=True, pool_timeout=pool_timeout)
    return Database(writer=engine, reader=engine)
