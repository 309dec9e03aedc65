"""Migrations build the schema from nothing, tear it down, and match the models exactly."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel

from app import migrate


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('mig') / 'm.db'}"
    url: str = request.getfixturevalue("postgres_url")
    # The session database is migrated and may hold other tests' rows: empty it, then go down.
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    engine.dispose()
    migrate.downgrade(url, "base")
    return url


def test_upgrade_downgrade_and_no_autogenerate_diff(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)
    engine = create_engine(empty_db_url)
    try:
        assert migrate.current_revision(engine) == migrate.head_revision()
        tables = set(inspect(engine).get_table_names())
        assert set(SQLModel.metadata.tables) <= tables
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata
            )
        assert diff == [], f"models and migrations differ: {diff}"

        migrate.downgrade(empty_db_url, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        migrate.upgrade(empty_db_url)  # leave the shared PostgreSQL database usable
        engine.dispose()


def test_0009_takes_knowledge_admin_from_every_tenant_client(empty_db_url: str) -> None:
    import json
    import uuid

    migrate.upgrade(empty_db_url, "0008")
    engine = create_engine(empty_db_url)
    tenant, ops = uuid.uuid4(), uuid.uuid4()
    every = ["knowledge:admin", "knowledge:read", "screenings:read", "tenants:admin"]
    with engine.begin() as conn:
        for tid, name in ((tenant, "ngo"), (ops, "operator")):
            conn.execute(
                text(
                    "INSERT INTO tenants (id, name, created_at, retention_days, "
                    "rescreen_on_release) VALUES (:id, :n, '2026-01-01', 365, false)"
                ),
                {"id": tid.hex if "sqlite" in empty_db_url else str(tid), "n": name},
            )
        for cid, tid in (("cl_tenant_admin", tenant), ("cl_operator", ops)):
            conn.execute(
                text(
                    "INSERT INTO clients (id, tenant_id, client_id, secret_hash, scopes, name, "
                    "disabled, created_at, secret_rotated_at) VALUES (:id, :t, :c, 'x', :s, '', "
                    "false, '2026-01-01', '2026-01-01')"
                ),
                {
                    "id": uuid.uuid4().hex if "sqlite" in empty_db_url else str(uuid.uuid4()),
                    "t": tid.hex if "sqlite" in empty_db_url else str(tid),
                    "c": cid,
                    "s": json.dumps(every),
                },
            )
    migrate.upgrade(empty_db_url)
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT client_id, scopes FROM clients")).all())
    engine.dispose()
    scopes = {k: v if isinstance(v, list) else json.loads(v) for k, v in rows.items()}
    assert scopes["cl_tenant_admin"] == ["knowledge:read", "screenings:read", "tenants:admin"]
    assert scopes["cl_operator"] == every
