"""Personal data at rest: sealed per screening, bound to its place, erased with its key,
re-wrapped on rotation, and carried over by the migration that introduced sealing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlmodel import Session, select

from app import migrate
from app.crypto import encode_key, new_key, parse_master_key
from app.db import Database
from app.keys import KeyRing, KeyUnavailable
from app.main import create_app
from app.models import Screening, SubjectKey, TenantKey
from tests.conftest import CANARY, token_for

pytestmark = pytest.mark.anyio

BODY = {
    "subject": {
        "full_name": f"{CANARY} Name",
        "ethnicity": f"Uyghur {CANARY}",
        "religion": f"{CANARY} faith",
        "political_activity": f"Spoke at a rally {CANARY}",
        "nationalities": ["CN"],
    },
    "notice": {
        "type": "red_notice",
        "issuing_country": "CN",
        "charges": f"participating in a terrorist organisation {CANARY}",
    },
    "context": f"Relatives were detained {CANARY}",
}


async def _create(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    r = await client.post("/v1/screenings", json=BODY, headers=headers)
    assert r.status_code == 201, r.text
    sid: str = r.json()["id"]
    return sid


def _sealed(database: Database, sid: str) -> tuple[bytes, bytes]:
    with database.session(write=False) as s:
        row = s.get(Screening, uuid.UUID(sid))
        assert row is not None
        return row.request_sealed, row.result_sealed


def _set(database: Database, sid: str, **values: bytes) -> None:
    with database.session() as s:
        row = s.get(Screening, uuid.UUID(sid))
        assert row is not None
        for k, v in values.items():
            setattr(row, k, v)
        s.add(row)


async def test_stored_personal_data_is_ciphertext_and_reads_back(
    client: httpx.AsyncClient, auth_a: dict[str, str], database: Database
) -> None:
    sid = await _create(client, auth_a)
    request_sealed, result_sealed = _sealed(database, sid)
    assert CANARY.encode() not in request_sealed
    assert CANARY.encode() not in result_sealed
    r = await client.get(f"/v1/screenings/{sid}", headers=auth_a)
    assert r.status_code == 200
    assert r.json()["flag"] in {"high", "severe"}


async def test_ciphertext_moved_to_another_row_column_or_tenant_does_not_open(
    client: httpx.AsyncClient,
    auth_a: dict[str, str],
    auth_b: dict[str, str],
    database: Database,
) -> None:
    a1, a2 = await _create(client, auth_a), await _create(client, auth_a)
    b1 = await _create(client, auth_b)
    a1_request, a1_result = _sealed(database, a1)
    swaps = [
        (a2, auth_a, {"result_sealed": a1_result}),  # another row of the same tenant
        (b1, auth_b, {"result_sealed": a1_result}),  # another tenant's row
        (a1, auth_a, {"result_sealed": a1_request}),  # another column of the same row
    ]
    statuses = []
    for sid, headers, values in swaps:
        _set(database, sid, **values)
        r = await client.get(f"/v1/screenings/{sid}", headers=headers)
        statuses.append(r.status_code)
        assert r.headers["content-type"] == "application/problem+json"
        assert CANARY not in r.text
    decrypted = sum(s == 200 for s in statuses)
    server_errors = sum(s >= 500 for s in statuses)
    print(f"SECMETRIC T81 swapped_fields={len(swaps)} decrypted={decrypted} 5xx={server_errors}")
    assert statuses == [410, 410, 410]
    # Put the right ciphertext back: it opens again, so the 410s came from the move alone.
    _set(database, a1, result_sealed=a1_result)
    assert (await client.get(f"/v1/screenings/{a1}", headers=auth_a)).status_code == 200


async def test_erasure_destroys_the_key_so_old_ciphertext_cannot_be_opened(
    app: Any, client: httpx.AsyncClient, auth_a: dict[str, str], database: Database
) -> None:
    sid = await _create(client, auth_a)
    _, result_sealed = _sealed(database, sid)
    keys: KeyRing = app.state.keys
    with database.session(write=False) as s:
        tenant_id = s.get(SubjectKey, uuid.UUID(sid)).tenant_id  # type: ignore[union-attr]
        keys.subject_key(s, tenant_id, uuid.UUID(sid), "screenings").open("result", result_sealed)
    assert (await client.delete(f"/v1/screenings/{sid}", headers=auth_a)).status_code == 204
    with database.session(write=False) as s:
        assert s.get(SubjectKey, uuid.UUID(sid)) is None
        with pytest.raises(KeyUnavailable):
            keys.subject_key(s, tenant_id, uuid.UUID(sid), "screenings")


async def test_rotation_rewraps_every_key_and_destroys_the_old_version(
    app: Any, client: httpx.AsyncClient, auth_a: dict[str, str], database: Database
) -> None:
    sids = [await _create(client, auth_a) for _ in range(3)]
    keys: KeyRing = app.state.keys
    with database.session(write=False) as s:
        tenant_id = s.get(Screening, uuid.UUID(sids[0])).tenant_id  # type: ignore[union-attr]
        before = {str(k.id): k.wrapped for k in s.exec(select(SubjectKey)).all()}
    with database.session() as s:
        version, rewrapped = keys.rotate_tenant(s, tenant_id)
    assert (version, rewrapped) == (2, 3)
    with database.session(write=False) as s:
        assert [
            k.version for k in s.exec(select(TenantKey).where(TenantKey.tenant_id == tenant_id))
        ] == [2]
        after = {str(k.id): k.wrapped for k in s.exec(select(SubjectKey)).all()}
    assert set(after) == set(before)
    assert all(after[i] != before[i] for i in before)
    for sid in sids:
        assert (await client.get(f"/v1/screenings/{sid}", headers=auth_a)).status_code == 200
    assert (await client.post("/v1/screenings", json=BODY, headers=auth_a)).status_code == 201


async def test_keys_made_before_a_rotation_are_wrapped_with_the_version_current_at_storing(
    app: Any, client: httpx.AsyncClient, auth_a: dict[str, str], database: Database
) -> None:
    """The batch worker makes keys and seals a chunk outside the write transaction, then
    stores them: a rotation in between must not leave them wrapped by a destroyed version."""
    sid = await _create(client, auth_a)
    keys: KeyRing = app.state.keys
    with database.session(write=False) as s:
        tenant_id = s.get(Screening, uuid.UUID(sid)).tenant_id  # type: ignore[union-attr]
    made = KeyRing.make_subject_keys(tenant_id, [uuid.uuid4(), uuid.uuid4()], "screenings")
    sealed = [h.seal("result", CANARY.encode()) for h in made]
    with database.session() as s:
        assert keys.rotate_tenant(s, tenant_id)[0] == 2
    with database.session() as s:
        keys.store_subject_keys(s, tenant_id, made)
    with database.session(write=False) as s:
        versions = {
            k.tenant_key_version
            for k in s.exec(select(SubjectKey).where(SubjectKey.tenant_id == tenant_id)).all()
        }
        assert versions == {2}
        for h, ciphertext in zip(made, sealed, strict=True):
            stored = keys.subject_key(s, tenant_id, h.object_id, "screenings")
            assert stored.open("result", ciphertext) == CANARY.encode()
    other = KeyRing.make_subject_keys(uuid.uuid4(), [uuid.uuid4()], "screenings")
    with database.session() as s, pytest.raises(ValueError, match="another tenant"):
        keys.store_subject_keys(s, tenant_id, other)


async def test_master_key_rewrap_locks_out_the_old_master(
    settings: Any, database: Database, kb: Any, tenant_a: Any
) -> None:
    app = create_app(settings, database=database, knowledge_base=kb)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        headers = {"Authorization": f"Bearer {await token_for(client, tenant_a)}"}
        sid = await _create(client, headers)
    new_master = new_key()
    with database.session() as s:
        assert app.state.keys.rewrap_master(s, new_master) == 1
    old_app = create_app(settings, database=database, knowledge_base=kb)
    new_settings = settings.model_copy(update={"master_key": SecretStr(encode_key(new_master))})
    new_app = create_app(new_settings, database=database, knowledge_base=kb)
    form = {
        "grant_type": "client_credentials",
        "client_id": tenant_a.client_id,
        "client_secret": tenant_a.client_secret,
    }
    # The client's secret pepper was re-sealed too: only the new master key verifies it.
    for candidate, expected, token_status in ((old_app, 410, 401), (new_app, 200, 200)):
        transport = httpx.ASGITransport(app=candidate)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.post("/v1/auth/token", data=form)).status_code == token_status
            r = await client.get(f"/v1/screenings/{sid}", headers=headers)
            assert r.status_code == expected


def test_migration_seals_existing_rows_and_the_downgrade_opens_them(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    master = encode_key(new_key())
    monkeypatch.setenv("MASTER_KEY", master)
    url = f"sqlite:///{tmp_path}/old.db"
    migrate.upgrade(url, "0002")
    engine = create_engine(url)
    tenant, sid = uuid.uuid4(), uuid.uuid4()
    request_json = '{"context":"' + CANARY + '"}'
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO tenants (id, name, created_at) VALUES (:id, 'old', '2026-01-01')"),
            {"id": tenant.hex},
        )
        conn.execute(
            text(
                "INSERT INTO screenings (id, tenant_id, created_at, flag, score, engine_version,"
                " kb_version, kb_sha256, request_json, result_json) VALUES (:id, :t,"
                " '2026-01-01', 'low', 3, '1', '1', 'x', :req, :res)"
            ),
            {"id": sid.hex, "t": tenant.hex, "req": request_json, "res": '{"r":"' + CANARY + '"}'},
        )
    migrate.upgrade(url)
    # The plain text is gone from the file itself, free pages and WAL included.
    files = [p for p in tmp_path.iterdir() if p.name.startswith("old.db")]
    assert files
    assert all(CANARY.encode() not in p.read_bytes() for p in files)
    keys = KeyRing(parse_master_key(master))
    with Session(engine) as s:
        row = s.get(Screening, sid)
        assert row is not None
        assert CANARY.encode() not in row.request_sealed
        key = keys.subject_key(s, tenant, sid, "screenings")
        assert key.open("request", row.request_sealed).decode() == request_json
    migrate.downgrade(url, "0002")
    with engine.connect() as conn:
        back = conn.execute(text("SELECT request_json FROM screenings")).scalar_one()
    assert back == request_json
    engine.dispose()
