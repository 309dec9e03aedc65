"""The token endpoint cannot take the service down (F1): limits per source address and per
client id before any secret is checked, no database connection held while a secret is
verified, HMAC-SHA-256 under a pepper (legacy Argon2id hashes replaced on first use), and a
pool that is exhausted answers 503 with Retry-After within about a second."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import select

from app.auth import HMAC_SCHEME, is_legacy_hash
from app.db import Database
from app.main import create_app
from app.models import Client
from tests.conftest import make_client, token_for
from tests.servers import PROJECT_ROOT, start_server, stop

pytestmark = pytest.mark.anyio

BODY = {"subject": {"full_name": "Flood Test", "nationalities": ["TR"]}}


def _form(client_id: str, secret: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}


async def test_legacy_argon2_hash_is_replaced_by_hmac_on_first_success(
    client: httpx.AsyncClient, database: Database
) -> None:
    creds = make_client(database, "tenant-a")  # written as Argon2id, as before this change

    def stored() -> str:
        with database.session(write=False) as s:
            row = s.exec(select(Client).where(Client.client_id == creds.client_id)).one()
            return row.secret_hash

    assert is_legacy_hash(stored())
    bad = await client.post("/v1/auth/token", data=_form(creds.client_id, "wrong"))
    assert bad.status_code == 401
    assert is_legacy_hash(stored())  # a failure changes nothing
    await token_for(client, creds)
    assert stored().startswith(HMAC_SCHEME + "$")
    await token_for(client, creds)  # and the HMAC form verifies
    bad = await client.post("/v1/auth/token", data=_form(creds.client_id, "wrong"))
    assert bad.status_code == 401


async def test_limits_apply_before_the_secret_is_checked(
    settings: Any, database: Database, kb: Any
) -> None:
    limited = settings.model_copy(
        update={"rate_limit_token_address": "1000/minute", "rate_limit_token_client": "3/minute"}
    )
    app = create_app(limited, database=database, knowledge_base=kb)
    creds = make_client(database, "tenant-a")
    other = make_client(database, "tenant-b")
    with database.session() as s:  # an HMAC hash, as the CLI writes now
        row = s.exec(select(Client).where(Client.client_id == creds.client_id)).one()
        row.secret_hash = app.state.secret_hasher.hash(creds.client_secret, client_id=row.client_id)
        s.add(row)
    checked: list[str] = []
    real_verify = app.state.secret_hasher.verify

    def counting_verify(secret_hash: str | None, secret: str, *, client_id: str) -> bool:
        checked.append(secret)
        return bool(real_verify(secret_hash, secret, client_id=client_id))

    app.state.secret_hasher.verify = counting_verify
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        statuses = [
            (await c.post("/v1/auth/token", data=_form(creds.client_id, f"guess-{i}"))).status_code
            for i in range(6)
        ]
        limited_r = await c.post("/v1/auth/token", data=_form(creds.client_id, "guess"))
        # Another client id is counted apart; the address limit is far away.
        other_ok = await c.post("/v1/auth/token", data=_form(other.client_id, other.client_secret))
    assert statuses == [401, 401, 401, 429, 429, 429]
    assert limited_r.status_code == 429
    assert int(limited_r.headers["retry-after"]) >= 1
    assert limited_r.headers["ratelimit-limit"] == "3"
    # Only the three attempts inside the limit reached a secret check.
    assert checked == ["guess-0", "guess-1", "guess-2"]
    assert other_ok.status_code == 200
    per_address = settings.model_copy(update={"rate_limit_token_address": "4/minute"})
    app2 = create_app(per_address, database=database, knowledge_base=kb)
    transport = httpx.ASGITransport(app=app2)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        ids = [f"cl_{uuid.uuid4().hex[:20]}" for _ in range(6)]
        by_address = [(await c.post("/v1/auth/token", data=_form(i, "x"))).status_code for i in ids]
    assert by_address == [401, 401, 401, 401, 429, 429]
    print(
        "SECMETRIC token_limits per_client=3 attempts=7 refused_429=4 "
        f"secret_checks={len(checked)} per_address=4 attempts=6 refused_429=2"
    )


async def test_no_connection_is_held_while_a_secret_is_verified(
    app: Any, client: httpx.AsyncClient, database: Database
) -> None:
    creds = make_client(database, "tenant-a")
    await token_for(client, creds)  # replaces the legacy hash
    seen: list[int] = []
    real_verify = app.state.secret_hasher.verify

    def watching_verify(secret_hash: str | None, secret: str, *, client_id: str) -> bool:
        seen.append(database.reader.pool.checkedout() + database.writer.pool.checkedout())
        return bool(real_verify(secret_hash, secret, client_id=client_id))

    app.state.secret_hasher.verify = watching_verify
    await token_for(client, creds)
    r = await client.post("/v1/auth/token", data=_form("cl_unknown000000000000", "x"))
    assert r.status_code == 401
    assert seen == [0, 0]


async def test_an_exhausted_pool_answers_503_with_retry_after_within_a_second(
    client: httpx.AsyncClient, database: Database, auth_a: dict[str, str]
) -> None:
    created = await client.post("/v1/screenings", json=BODY, headers=auth_a)
    assert created.status_code == 201, created.text
    path = f"/v1/screenings/{created.json()['id']}"
    held = []
    try:
        for _ in range(100):  # every connection the reader's pool will give out
            try:
                held.append(database.reader.connect())
            except PoolTimeout:
                break
        start = time.perf_counter()
        r = await client.get(path, headers=auth_a)
        elapsed = time.perf_counter() - start
    finally:
        for conn in held:
            conn.close()
    print(f"SECMETRIC pool_exhausted held={len(held)} status={r.status_code} seconds={elapsed:.2f}")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert r.headers["content-type"].startswith("application/problem+json")
    # How soon is a setting, not a timing: the pool gives up after its timeout (under a
    # second by default; the measured figure is printed above and in docs/security.md).
    assert database.reader.pool.timeout() <= 1.0
    assert (await client.get(path, headers=auth_a)).status_code == 200  # and it recovers


# --- a real server under a flood of bad credentials ----------------------------------------

FLOOD_LOOPS = 40
ATTEMPTS_PER_LOOP = 15
READS = 20


def _deployment(data_dir: Path, db_url: str, **settings: str) -> tuple[dict[str, str], Any]:
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": db_url,
        "LOG_LEVEL": "WARNING",
        "BATCH_WORKER": "false",
        "BATCH_WORKER_PROCESSES": "0",
        "WEBHOOK_POLL_SECONDS": "0",
        "PURGE_INTERVAL_SECONDS": "0",
        **settings,
    }
    made = subprocess.run(
        [sys.executable, "-m", "app", "create-client", "--tenant", "ngo", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    return env, json.loads(made.stdout)


@pytest.mark.parametrize("token_limits", ["default", "off"])
async def test_bad_credential_flood_leaves_authenticated_reads_fast(
    db_url: str, tmp_path: Path, token_limits: str
) -> None:
    """40 concurrent loops of bad credentials (unknown client ids and a real id with wrong
    secrets) against a real server on loopback, while a reader keeps reading a screening:
    every read is a 200 within 2 s. With the token limits off, the cheap secret check and the
    released connection hold on their own (a flood from many addresses)."""
    extra = (
        {"RATE_LIMIT_TOKEN_ADDRESS": "", "RATE_LIMIT_TOKEN_CLIENT": ""}
        if token_limits == "off"
        else {}
    )
    env, creds = _deployment(tmp_path, db_url, **extra)
    proc, port = start_server(env, tmp_path / "server.log")
    base = f"http://127.0.0.1:{port}"
    try:
        limits = httpx.Limits(max_connections=FLOOD_LOOPS + 5)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as c:
            r = await c.post(
                "/v1/auth/token", data=_form(creds["client_id"], creds["client_secret"])
            )
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            created = await c.post("/v1/screenings", json=BODY, headers=headers)
            assert created.status_code == 201, created.text
            path = f"/v1/screenings/{created.json()['id']}"
            statuses: list[int] = []
            latencies: list[float] = []
            read_statuses: list[int] = []
            stop_flag = asyncio.Event()

            async def flood(n: int) -> None:
                for i in range(ATTEMPTS_PER_LOOP):
                    cid = creds["client_id"] if i % 2 else f"cl_{uuid.uuid4().hex[:20]}"
                    resp = await c.post("/v1/auth/token", data=_form(cid, f"wrong-{n}-{i}"))
                    statuses.append(resp.status_code)

            async def reader() -> None:
                await asyncio.sleep(0.2)  # the flood is under way
                for _ in range(READS):
                    start = time.perf_counter()
                    resp = await c.get(path, headers=headers)
                    latencies.append(time.perf_counter() - start)
                    read_statuses.append(resp.status_code)
                    if stop_flag.is_set():
                        break
                    await asyncio.sleep(0.05)

            started = time.perf_counter()
            floods = asyncio.gather(*(flood(n) for n in range(FLOOD_LOOPS)))
            await asyncio.gather(floods, reader())
            stop_flag.set()
            duration = time.perf_counter() - started
    finally:
        stop(proc)
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    print(
        f"SECMETRIC token_flood limits={token_limits} loops={FLOOD_LOOPS} "
        f"attempts={len(statuses)} statuses={counts} reads={len(latencies)} "
        f"read_statuses={sorted(set(read_statuses))} "
        f"read_median_s={statistics.median(latencies):.3f} read_max_s={max(latencies):.3f} "
        f"duration_s={duration:.1f}"
    )
    # Every read answered (the latencies are a measurement, printed above and reported in
    # docs/security.md, not asserted: a loaded machine must not fail the suite).
    assert set(read_statuses) == {200}
    assert len(latencies) >= 1
    assert set(statuses) <= {401, 429}
