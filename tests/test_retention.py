"""Retention: each tenant's screenings are purged after its retention period, keys included,
with an audit entry per screening; other tenants' periods are their own."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import select

from app import retention
from app.db import Database
from app.models import AuditEvent, Screening, SubjectKey, utcnow
from tests.conftest import token_for

pytestmark = pytest.mark.anyio

BODY = {"notice": {"issuing_country": "FR", "charges": "armed robbery of a bank"}}


async def _screen(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    r = await client.post("/v1/screenings", json=BODY, headers=headers)
    assert r.status_code == 201
    sid: str = r.json()["id"]
    return sid


def _age(database: Database, sid: str, days: int) -> None:
    with database.session() as s:
        s.connection().execute(
            update(Screening)
            .where(Screening.id == uuid.UUID(sid))  # type: ignore[arg-type]
            .values(created_at=utcnow() - timedelta(days=days))
        )


async def test_purge_erases_expired_screenings_per_tenant_period(
    client: httpx.AsyncClient,
    auth_a: dict[str, str],
    auth_b: dict[str, str],
    database: Database,
) -> None:
    old_a = [await _screen(client, auth_a) for _ in range(3)]
    fresh_a = await _screen(client, auth_a)
    old_b = await _screen(client, auth_b)
    for sid in old_a:
        _age(database, sid, 400)
    _age(database, fresh_a, 300)
    _age(database, old_b, 400)
    r = await client.put("/v1/tenant", json={"retention_days": 3650}, headers=auth_b)
    assert r.status_code == 200
    assert r.json()["retention_days"] == 3650

    purged = retention.purge(database)

    assert purged == {"tenant-a": 3}
    with database.session(write=False) as s:
        left = {str(i) for i in s.exec(select(Screening.id)).all()}
        keys = {str(i) for i in s.exec(select(SubjectKey.id)).all()}
        entries = s.exec(select(AuditEvent).where(AuditEvent.action == "screening.purged")).all()
    remaining = set(old_a) & left
    assert left == {fresh_a, old_b}
    assert keys == left  # the purged screenings' keys are gone with them
    assert sorted(str(e.object_id) for e in entries) == sorted(old_a)
    assert {e.client_id for e in entries} == {retention.SYSTEM_ACTOR}
    for sid in old_a:
        assert (await client.get(f"/v1/screenings/{sid}", headers=auth_a)).status_code == 404
    audit = (await client.get("/v1/audit?action=screening.purged", headers=auth_a)).json()
    assert len(audit["items"]) == 3
    print(
        f"SECMETRIC T83 expired_rows={len(old_a)} remaining={len(remaining)} "
        f"audit_purge_entries={len(entries)} other_tenant_kept={int(old_b in left)}"
    )
    assert retention.purge(database) == {}  # nothing left to do


async def test_shortening_the_period_purges_at_the_next_run(
    client: httpx.AsyncClient, auth_a: dict[str, str], database: Database
) -> None:
    sid = await _screen(client, auth_a)
    _age(database, sid, 40)
    assert retention.purge(database) == {}
    r = await client.put("/v1/tenant", json={"retention_days": 30}, headers=auth_a)
    assert r.json() == {"name": "tenant-a", "retention_days": 30, "rescreen_on_release": False}
    assert (await client.get("/v1/tenant", headers=auth_a)).json()["retention_days"] == 30
    assert retention.purge(database) == {"tenant-a": 1}


async def test_tenant_settings_validate_and_need_the_admin_scope(
    client: httpx.AsyncClient, auth_a: dict[str, str], tenant_a: Any
) -> None:
    for bad in ({"retention_days": 0}, {"retention_days": 3651}, {"retention_days": 30, "x": 1}):
        r = await client.put("/v1/tenant", json=bad, headers=auth_a)
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"
    reader = {"Authorization": f"Bearer {await token_for(client, tenant_a, 'screenings:read')}"}
    assert (await client.get("/v1/tenant", headers=reader)).status_code == 403
    r = await client.put("/v1/tenant", json={"retention_days": 30}, headers=reader)
    assert r.status_code == 403


async def test_finished_batches_past_the_period_are_purged_with_their_key(
    app: Any, client: httpx.AsyncClient, auth_a: dict[str, str], database: Database
) -> None:
    from app import batches
    from app.models import Batch, BatchItem

    body = [{**BODY, "client_ref": "ref-1"}, {**BODY, "client_ref": "ref-2"}]
    old = (await client.post("/v1/batches", json=body, headers=auth_a)).json()["id"]
    running = (await client.post("/v1/batches", json=body, headers=auth_a)).json()["id"]
    while batches.work_once(app.state.db, app.state.releases, app.state.keys, "t"):
        pass
    with database.session() as s:  # the first is old and finished; the second still running
        s.connection().execute(
            update(Batch)
            .where(Batch.id.in_([uuid.UUID(old), uuid.UUID(running)]))  # type: ignore[attr-defined]
            .values(created_at=utcnow() - timedelta(days=400))
        )
        s.connection().execute(
            update(Batch).where(Batch.id == uuid.UUID(running)).values(state="running")  # type: ignore[arg-type]
        )
    retention.purge(database)
    with database.session(write=False) as s:
        left = {str(b) for b in s.exec(select(Batch.id)).all()}
        items = s.exec(select(BatchItem.batch_id)).all()
        keys = {str(k) for k in s.exec(select(SubjectKey.id)).all()}
        purged = s.exec(select(AuditEvent).where(AuditEvent.action == "batch.purged")).all()
    assert left == {running}
    assert {str(i) for i in items} == {running}
    assert old not in keys
    assert running in keys
    assert [str(e.object_id) for e in purged] == [old]
    assert (await client.get(f"/v1/batches/{old}", headers=auth_a)).status_code == 404
