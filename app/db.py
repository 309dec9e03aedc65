"""Engines per dialect and the request-scoped session.

SQLite: WAL, a busy timeout, foreign keys and secure_delete on every connection, and write
transactions that begin IMMEDIATE so a read-modify-write cannot lose an update to a concurrent
writer (pysqlite would otherwise run the first SELECT outside any transaction). Reads use a
second engine whose transactions begin DEFERRED, so they never wait for the write lock.
PostgreSQL uses one engine for both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

SQLITE_BUSY_TIMEOUT_MS = 15_000


@dataclass(frozen=True, slots=True)
class Database:
    writer: Engine
    reader: Engine

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

    def dispose(self) -> None:
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
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
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def create_database(url: str) -> Database:
    if url.startswith("sqlite"):
        writer = _sqlite_engine(url, immediate=True)
        memory = make_url(url).database in (None, "", ":memory:")
        # An in-memory database exists once per connection: readers must share the writer's.
        reader = writer if memory else _sqlite_engine(url, immediate=False)
        return Database(writer=writer, reader=reader)
    engine = create_engine(url, hide_parameters=True, pool_pre_ping=True)
    return Database(writer=engine, reader=engine)
