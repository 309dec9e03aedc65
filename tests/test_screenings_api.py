"""The screening API: contract, idempotency, erasure, listing and tenant isolation."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlmodel import select

from app.api.examples import SCREENING_EXAMPLES
from app.models import AuditEvent, Screening
from tests.conftest import CANARY

pytestmark = pytest.mark.anyio

RESULT_KEYS = {
    "id",
    "created_at",
    "score",
    "flag",
    "thresholds",
    "confidence",
    "return_risk",
    "indicators",
    "counter_indicators",
    "challenge_grounds",
    "missing_information",
    "similar_cases",
    "sources",
    "score_formula",
    "engine_version",
    "knowledge_base",
    "disclaimer",
}
BODY: dict[str, Any] = {
    "subject": {"full_name": CANARY, "occupation": "journalist", "nationalities": ["RU"]},
    "notice": {
        "type": "red_notice",
        "issuing_country": "RU",
        "charges": "Distributing knowingly false information about the armed forces",
    },
}


async def test_every_swagger_example_runs_as_is(
    client: httpx.AsyncClient, auth_a: dict[str, str], kb: Any
) -> None:
    for name, example in SCREENING_EXAMPLES.items():
        r = await client.post("/v1/screenings", json=example["value"], headers=auth_a)
        assert r.status_code == 201, (name, r.text)
        body = r.json()
        assert set(body) == RESULT_KEYS
        assert r.headers["location"] == f"/v1/screenings/{body['id']}"
        assert body["knowledge_base"] == {"version": kb.version, "sha256": kb.sha256}
        fired = body["indicators"] + body["counter_indicators"] + body["return_risk"]["indicators"]
        cited = {s for i in fired for s in i["source_ids"]}
        assert body["confidence"]["level"] in ("low", "medium", "high")
        assert body["return_risk"]["level"] in ("low", "elevated", "high", "severe")
        cited |= {s for g in body["challenge_grounds"] for s in g["source_ids"]}
        assert cited <= set(body["sources"])
        for ref in body["sources"].values():
            assert ref["url"].startswith(("http://", "https://"))
        assert "not legal advice" in body["disclaimer"]


async def test_get_returns_what_post_returned(
    client: httpx.AsyncClient, auth_a: dict[str, str]
) -> None:
    created = await client.post("/v1/screenings", json=BODY, headers=auth_a)
    read = await client.get(f"/v1/screenings/{created.json()['id']}", headers=auth_a)
    assert read.status_code == 200
    assert read.json() == created.json()


async def test_store_false_stores_nothing(
    client: httpx.AsyncClient, auth_a: dict[str, str], database: Any
) -> None:
    r = await client.post("/v1/screenings?store=false", json=BODY, headers=auth_a)
    assert r.status_code == 200
    assert r.json()["id"] is None
    assert "location" not in r.headers
    with database.session(write=False) as s:
        assert s.exec(select(Screening)).all() == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"context": "only context"},
        {"subject": {"unknown_field": 1}},
        {"notice": {"issuing_country": "China"}},
        {"subject": {"date_of_birth": "12/03/1980"}},
        {"subject": {"profile_tags": ["spy"]}},
        {"subject": {"refugee_status": {"status": "maybe"}}},
        {"notice": {"charges": "x" * 8001}},
        {"subject": {"affiliations": ["a"] * 31}},
        {"notice": {"charges": "bad\u0000nul"}},
    ],
)
async def test_invalid_bodies_are_422_without_echo(
    client: httpx.AsyncClient, auth_a: dict[str, str], body: dict[str, Any]
) -> None:
    body = {**body, "context": f"{CANARY} {body.get('context', '')}"} if body else body
    r = await client.post("/v1/screenings", json=body, headers=auth_a)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert CANARY not in r.text
    assert r.json()["errors"]


async def test_malformed_json_is_400(client: httpx.AsyncClient, auth_a: dict[str, str]) -> None:
    r = await client.post(
        "/v1/screenings",
        content=b'{"subject": ',
        headers={**auth_a, "content-type": "application/json"},
    )
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"


async def test_idempotent_retry_returns_the_first_result(
    client: httpx.AsyncClient, auth_a: dict[str, str], auth_b: dict[str, str], database: Any
) -> None:
    headers = {**auth_a, "Idempotency-Key": "key-0001-abcdef"}
    first = await client.post("/v1/screenings", json=BODY, headers=headers)
    assert first.status_code == 201
    for _ in range(4):
        again = await client.post("/v1/screenings", json=BODY, headers=headers)
        assert again.status_code == 200
        assert again.json() == first.json()
    other = await client.post(
        "/v1/screenings", json={**BODY, "context": "different"}, headers=headers
    )
    assert other.status_code == 422
    # another tenant's identical key is independent
    theirs = await client.post(
        "/v1/screenings", json=BODY, headers={**auth_b, "Idempotency-Key": "key-0001-abcdef"}
    )
    assert theirs.status_code == 201
    assert theirs.json()["id"] != first.json()["id"]
    with database.session(write=False) as s:
        assert len(s.exec(select(Screening)).all()) == 2
    print("SECMETRIC T90 serial_retries=5 created=1 different_body=422 cross_tenant_independent=1")


async def test_concurrent_requests_with_one_key_create_one_screening(
    client: httpx.AsyncClient, auth_a: dict[str, str], database: Any
) -> None:
    headers = {**auth_a, "Idempotency-Key": "key-concurrent-01"}
    responses = await asyncio.gather(
        *[client.post("/v1/screenings", json=BODY, headers=headers) for _ in range(20)]
    )
    statuses = sorted({r.status_code for r in responses})
    assert set(statuses) <= {200, 201, 409}
    assert sum(r.status_code == 201 for r in responses) == 1
    with database.session(write=False) as s:
        assert len(s.exec(select(Screening)).all()) == 1
    print(f"SECMETRIC T91 concurrent=20 created=1 statuses={statuses}")


async def test_erasure_removes_input_and_result_and_keeps_a_tombstone(
    client: httpx.AsyncClient, auth_a: dict[str, str], database: Any
) -> None:
    sid = (await client.post("/v1/screenings", json=BODY, headers=auth_a)).json()["id"]
    r = await client.delete(f"/v1/screenings/{sid}", headers=auth_a)
    assert r.status_code == 204
    assert (await client.get(f"/v1/screenings/{sid}", headers=auth_a)).status_code == 404
    assert (await client.delete(f"/v1/screenings/{sid}", headers=auth_a)).status_code == 404
    with database.session(write=False) as s:
        assert s.exec(select(Screening)).all() == []
        events = s.exec(select(AuditEvent)).all()
    actions = sorted(e.action for e in events)
    assert actions == ["screening.created", "screening.erased"]
    assert all(CANARY not in repr(e.model_dump()) for e in events)


async def test_list_filters_and_cursor_pagination(
    client: httpx.AsyncClient, auth_a: dict[str, str], auth_b: dict[str, str]
) -> None:
    ids = []
    for country in ["RU", "RU", "TR", "RU", "PT"]:
        body = {"notice": {"issuing_country": country, "charges": "fraud"}}
        ids.append((await client.post("/v1/screenings", json=body, headers=auth_a)).json()["id"])
    await client.post("/v1/screenings", json=BODY, headers=auth_b)

    seen: list[str] = []
    cursor = None
    while True:
        url = "/v1/screenings?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url, headers=auth_a)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen)) == 5

    ru = (await client.get("/v1/screenings?issuing_country=RU", headers=auth_a)).json()["items"]
    assert len(ru) == 3
    flags = {
        i["flag"] for i in (await client.get("/v1/screenings", headers=auth_a)).json()["items"]
    }
    some_flag = next(iter(flags))
    filtered = (await client.get(f"/v1/screenings?flag={some_flag}", headers=auth_a)).json()
    assert {i["flag"] for i in filtered["items"]} == {some_flag}
    future = (
        await client.get("/v1/screenings?created_after=2100-01-01T00:00:00Z", headers=auth_a)
    ).json()
    assert future["items"] == []
    bad = await client.get("/v1/screenings?cursor=%%%", headers=auth_a)
    assert bad.status_code == 422


async def test_other_tenants_screenings_are_404_like_missing(
    client: httpx.AsyncClient, auth_a: dict[str, str], auth_b: dict[str, str]
) -> None:
    sid = (await client.post("/v1/screenings", json=BODY, headers=auth_a)).json()["id"]
    leaks = 0
    for method in ("GET", "DELETE"):
        theirs = await client.request(method, f"/v1/screenings/{sid}", headers=auth_b)
        missing = await client.request(method, f"/v1/screenings/{uuid.uuid4()}", headers=auth_b)
        assert theirs.status_code == missing.status_code == 404
        a, b = theirs.json(), missing.json()
        a.pop("request_id")
        b.pop("request_id")
        assert a == b
        leaks += theirs.status_code != 404
    listing = (await client.get("/v1/screenings", headers=auth_b)).json()["items"]
    assert sid not in {i["id"] for i in listing}
    still = await client.get(f"/v1/screenings/{sid}", headers=auth_a)
    assert still.status_code == 200
    print(f"SECMETRIC T10 screenings cross_tenant_requests=2 leaked={leaks} list_leaks=0")


async def test_scopes_are_enforced(client: httpx.AsyncClient, tenant_a: Any) -> None:
    from tests.conftest import token_for

    read_only = await token_for(client, tenant_a, scope="screenings:read")
    r = await client.post(
        "/v1/screenings", json=BODY, headers={"Authorization": f"Bearer {read_only}"}
    )
    assert r.status_code == 403


async def test_audit_trail_is_tenant_scoped_paginated_and_free_of_personal_data(
    client: httpx.AsyncClient, auth_a: dict[str, str], auth_b: dict[str, str]
) -> None:
    ids = [
        (await client.post("/v1/screenings", json=BODY, headers=auth_a)).json()["id"]
        for _ in range(3)
    ]
    await client.delete(f"/v1/screenings/{ids[0]}", headers=auth_a)
    await client.post("/v1/screenings", json=BODY, headers=auth_b)

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        url = "/v1/audit?limit=2" + (f"&cursor={cursor}" if cursor else "")
        r = await client.get(url, headers=auth_a)
        assert r.status_code == 200
        assert CANARY not in r.text
        seen += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(e["action"] for e in seen) == ["screening.created"] * 3 + ["screening.erased"]
    assert {e["object_id"] for e in seen} == set(ids)
    erased = (await client.get("/v1/audit?action=screening.erased", headers=auth_a)).json()
    assert [e["object_id"] for e in erased["items"]] == [ids[0]]
    theirs = (await client.get("/v1/audit", headers=auth_b)).json()["items"]
    assert len(theirs) == 1
    assert theirs[0]["object_id"] not in ids
