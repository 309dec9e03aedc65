"""No lost writes under concurrency, on SQLite and on PostgreSQL.

8 threads x 150 operations each, through the same ``Database.session()`` the request handlers
use: screenings created with the use case (one transaction each), and a counter incremented by
read-then-write. The control shows the same read-then-write without a write lock loses updates,
so the counts above could fail.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, func, select, update
from sqlalchemy.engine import Connection
from sqlmodel import col

from app import screenings
from app.api.examples import SCREENING_EXAMPLES
from app.auth import ALL_SCOPES, Principal, TokenService
from app.crypto import new_key
from app.db import Database
from app.engine import ScreeningInput
from app.kb.loader import KnowledgeBase
from app.keys import KeyRing
from app.models import AuditEvent, Client, Screening
from tests.conftest import make_client

THREADS = 8
OPS = 150
TOTAL = THREADS * OPS
THINK_S = 0.0005  # between the read and the write: a handler does work there too

pytestmark = pytest.mark.timeout(240)


def _hammer(op: Callable[[int, int], Any]) -> list[BaseException]:
    """Run ``op(thread, i)`` OPS times on each of THREADS threads, all released together;
    return the exceptions raised."""
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []
    guard = threading.Lock()

    def worker(t: int) -> None:
        start.wait()
        for i in range(OPS):
            try:
                op(t, i)
            except Exception as exc:
                with guard:
                    errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return errors


# --- a test-only counter table (not in SQLModel.metadata, so dropped here) ---------------------

_COUNTER_META = MetaData()
COUNTER = Table(
    "test_rmw_counter",
    _COUNTER_META,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("value", Integer, nullable=False),
)


@pytest.fixture
def counter(database: Database) -> Iterator[Table]:
    _COUNTER_META.create_all(database.writer)
    try:
        with database.session() as session:
            session.connection().execute(COUNTER.insert().values(id=1, value=0))
        yield COUNTER
    finally:
        _COUNTER_META.drop_all(database.writer)


def _read_counter(database: Database) -> int:
    with database.session(write=False) as session:
        query = select(COUNTER.c.value).where(COUNTER.c.id == 1)
        value: int = session.connection().execute(query).scalar_one()
        return value


def _increment(conn: Connection, *, lock_row: bool) -> None:
    """Read the counter, think, write it back plus one. ``lock_row`` adds FOR UPDATE, which
    PostgreSQL needs under READ COMMITTED; SQLite has no such clause (SQLAlchemy leaves it out)
    and relies on the transaction having begun IMMEDIATE."""
    query = select(COUNTER.c.value).where(COUNTER.c.id == 1)
    if lock_row:
        query = query.with_for_update()
    value = conn.execute(query).scalar_one()
    time.sleep(THINK_S)
    conn.execute(update(COUNTER).where(COUNTER.c.id == 1).values(value=value + 1))


# --- the tests ---------------------------------------------------------------------------------


def _principal(database: Database, signing_pem: str) -> Principal:
    """The principal a request with a fresh token for a new client gets."""
    creds = make_client(database, "conc-tenant")
    with database.session(write=False) as session:
        query = select(Client.tenant_id).where(col(Client.client_id) == creds.client_id)
        tenant_id: uuid.UUID = session.connection().execute(query).scalar_one()
    tokens = TokenService(signing_pem.encode(), issuer="iss", audience="aud", ttl_seconds=900)
    token = tokens.issue(
        client_id=creds.client_id, tenant_id=tenant_id, scopes=frozenset(ALL_SCOPES)
    )
    return tokens.verify(token)


def test_concurrent_writes_and_read_modify_writes_lose_nothing(
    database: Database, counter: Table, kb: KnowledgeBase, signing_pem: str
) -> None:
    dialect = database.writer.dialect.name
    principal = _principal(database, signing_pem)
    keys = KeyRing(new_key())
    request = ScreeningInput.model_validate(SCREENING_EXAMPLES["uyghur_activist"]["value"])

    created: list[uuid.UUID] = []
    guard = threading.Lock()

    def create(_t: int, _i: int) -> None:
        with database.session() as session:
            stored, new = screenings.create(session, principal, request, kb, keys)
        assert new
        assert stored.id is not None
        with guard:
            created.append(stored.id)

    write_errors = _hammer(create)

    def increment(_t: int, _i: int) -> None:
        with database.session(write=True) as session:
            _increment(session.connection(), lock_row=True)

    rmw_errors = _hammer(increment)

    with database.session(write=False) as session:
        conn = session.connection()
        stored_ids = set(
            conn.execute(
                select(Screening.id).where(col(Screening.tenant_id) == principal.tenant_id)
            ).scalars()
        )
        audited = conn.execute(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                col(AuditEvent.tenant_id) == principal.tenant_id,
                col(AuditEvent.action) == "screening.created",
            )
        ).scalar_one()
    value = _read_counter(database)
    errors = len(write_errors) + len(rmw_errors)
    print(
        f"SECMETRIC concurrency_{dialect} threads={THREADS} ops={OPS} writes={len(created)} "
        f"rows={len(stored_ids)} counter={value} lost={TOTAL - value} errors={errors}"
    )
    assert write_errors == []
    assert rmw_errors == []
    assert len(created) == TOTAL
    assert stored_ids == set(created)  # every acknowledged write is there, and nothing else
    assert audited == TOTAL
    assert value == TOTAL


def test_control_read_then_write_without_a_write_lock_loses_updates(
    database: Database, counter: Table, db_url: str
) -> None:
    """The same increment, minus what makes it safe: on SQLite a plain engine, where pysqlite
    runs the SELECT outside any transaction (no BEGIN IMMEDIATE); on PostgreSQL the service's
    own session at READ COMMITTED without FOR UPDATE."""
    if database.writer.dialect.name == "sqlite":
        plain = create_engine(db_url, connect_args={"timeout": 15})

        def increment(_t: int, _i: int) -> None:
            with plain.connect() as conn:
                _increment(conn, lock_row=False)
                conn.commit()

    else:
        plain = None

        def increment(_t: int, _i: int) -> None:
            with database.session(write=True) as session:
                _increment(session.connection(), lock_row=False)

    try:
        errors = _hammer(increment)
    finally:
        if plain is not None:
            plain.dispose()
    value = _read_counter(database)
    assert errors == []
    assert TOTAL - value > 0, "no update was lost: this control cannot tell safe from unsafe"
