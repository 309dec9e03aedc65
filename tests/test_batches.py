"""Batch screening: mixed uploads in three formats, the database as the work queue (claims,
leases, disjoint workers), results in three formats, idempotency and cancellation."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select

from app import batches
from app.db import Database
from app.models import BatchItem, Screening, utcnow
from tests.conftest import CANARY
from tests.servers import bearer, sqlite_deployment, start_server, stop

pytestmark = pytest.mark.anyio

VALID = [
    {
        "client_ref": "case-1",
        "subject": {"ethnicity": "Uyghur", "profile_tags": ["activist"]},
        "notice": {"type": "red_notice", "issuing_country": "CN", "charges": "terrorism"},
    },
    {"client_ref": "case-2", "notice": {"issuing_country": "FR", "charges": "armed robbery"}},
    {
        "client_ref": "=HYPERLINK(case-3)",
        "subject": {"religion": "Jehovah's Witness"},
        "notice": {"issuing_country": "RU", "charges": "extremist organisation 282.2"},
    },
]
INVALID = [
    {"client_ref": "bad-1", "subject": {"nationalities": [f"{CANARY}"]}},  # not ISO codes
    {"client_ref": "bad-2", "surprise": CANARY},  # unknown field
]


def _ndjson(items: list[Any]) -> bytes:
    return "\n".join(json.dumps(i) for i in items).encode() + b"\nnot json " + CANARY.encode()


def _csv_upload() -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["client_ref", "ethnicity", "profile_tags", "issuing_country", "charges", "public"])
    w.writerow(["c-1", "Uyghur", "activist;journalist", "CN", "terrorism", "true"])
    w.writerow(["c-2", "", "", "FR", "armed robbery", ""])
    w.writerow(["c-3", "", "", "XXX", "fraud", ""])  # bad country
    w.writerow(["c-4", "", "", "FR", "fraud", CANARY])  # bad boolean
    return out.getvalue().encode()


async def _upload(
    client: httpx.AsyncClient, headers: dict[str, str], body: bytes, media: str, key: str = ""
) -> httpx.Response:
    h = {**headers, "Content-Type": media}
    if key:
        h["Idempotency-Key"] = key
    return await client.post("/v1/batches", content=body, headers=h)


def _drain(app: Any) -> int:
    total = 0
    while (n := batches.work_once(app.state.db, app.state.releases, app.state.keys, "test")) > 0:
        total += n
    return total


@pytest.mark.parametrize(
    ("media", "expected_valid", "expected_invalid"),
    [("application/json", 3, 2), ("application/x-ndjson", 3, 3), ("text/csv", 2, 2)],
)
async def test_mixed_uploads_report_each_bad_item_and_screen_the_rest(
    app: Any,
    client: httpx.AsyncClient,
    auth_a: dict[str, str],
    media: str,
    expected_valid: int,
    expected_invalid: int,
) -> None:
    body = {
        "application/json": json.dumps(VALID + INVALID).encode(),
        "application/x-ndjson": _ndjson(VALID + INVALID),
        "text/csv": _csv_upload(),
    }[media]
    r = await _upload(client, auth_a, body, media)
    assert r.status_code == 202, r.text
    assert CANARY not in r.text
    status = r.json()
    assert r.headers["location"] == f"/v1/batches/{status['id']}"
    assert status["state"] == "queued"
    assert status["counts"]["total"] == expected_valid + expected_invalid
    assert status["counts"]["invalid"] == expected_invalid
    assert status["counts"]["pending"] == expected_valid

    assert _drain(app) == expected_valid
    status = (await client.get(r.headers["location"], headers=auth_a)).json()
    assert status["state"] == "completed"
    assert status["progress"] == 1.0
    assert status["counts"]["done"] == expected_valid

    page = (await client.get(f"{r.headers['location']}/results", headers=auth_a)).json()
    items = page["items"]
    assert [i["row"] for i in items] == sorted(i["row"] for i in items)
    assert CANARY not in json.dumps(page)
    done = [i for i in items if i["state"] == "done"]
    bad = [i for i in items if i["state"] == "invalid"]
    assert (len(done), len(bad)) == (expected_valid, expected_invalid)
    assert all(i["problems"] and i["problems"][0]["row"] == i["row"] for i in bad)
    # Each result is what a single screening of the same request returns.
    for item in done:
        stored = await client.get(f"/v1/screenings/{item['screening_id']}", headers=auth_a)
        assert stored.status_code == 200
        assert (stored.json()["flag"], stored.json()["score"]) == (item["flag"], item["score"])
    if media != "text/csv":
        single = await client.post(
            "/v1/screenings?store=false",
            json={k: v for k, v in VALID[0].items() if k != "client_ref"},
            headers=auth_a,
        )
        first = next(i for i in items if i["client_ref"] == "case-1")
        assert (first["flag"], first["score"]) == (single.json()["flag"], single.json()["score"])
        top = [i["code"] for i in sorted(single.json()["indicators"], key=lambda i: -i["points"])]
        assert first["top_indicators"] == top[:3]


async def test_results_as_ndjson_and_csv_and_paginated_json(
    app: Any, client: httpx.AsyncClient, auth_a: dict[str, str]
) -> None:
    items = [dict(VALID[i % 3], client_ref=f"ref-{i}") for i in range(7)]
    items[2] = dict(VALID[2])  # "=HYPERLINK(...)" client_ref
    r = await _upload(client, auth_a, json.dumps(items).encode(), "application/json")
    url = r.headers["location"] + "/results"
    _drain(app)
    rows, cursor = [], None
    while True:
        q = f"?limit=3&cursor={cursor}" if cursor else "?limit=3"
        page = (await client.get(url + q, headers=auth_a)).json()
        rows += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [i["row"] for i in rows] == list(range(1, 8))
    nd = await client.get(url, headers={**auth_a, "Accept": "application/x-ndjson"})
    assert nd.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line) for line in nd.text.splitlines()] == rows
    c = await client.get(url, headers={**auth_a, "Accept": "text/csv"})
    table = list(csv.DictReader(io.StringIO(c.text)))
    assert [int(t["row"]) for t in table] == list(range(1, 8))
    assert table[2]["client_ref"] == "'=HYPERLINK(case-3)"  # never run as a formula
    assert {t["flag"] for t in table} == {i["flag"] for i in rows}
    bad = await client.get(url, headers={**auth_a, "Accept": "application/xml"})
    assert bad.status_code == 406


async def test_idempotent_resubmission_and_refused_uploads(
    client: httpx.AsyncClient, auth_a: dict[str, str], auth_b: dict[str, str]
) -> None:
    body = json.dumps(VALID).encode()
    first = await _upload(client, auth_a, body, "application/json", key="batch-key-0001")
    again = await _upload(client, auth_a, body, "application/json", key="batch-key-0001")
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]
    other = await _upload(client, auth_a, body[:-1] + b",{}]", "application/json", "batch-key-0001")
    assert other.status_code == 422
    b_same = await _upload(client, auth_b, body, "application/json", key="batch-key-0001")
    assert b_same.status_code == 202
    assert b_same.json()["id"] != first.json()["id"]
    refused = [
        await _upload(client, auth_a, b"[{", "application/json"),
        await _upload(client, auth_a, b'{"not": "an array"}', "application/json"),
        await _upload(client, auth_a, b"\xff\xfe", "text/csv"),
        await _upload(client, auth_a, b"nope,columns\n1,2\n", "text/csv"),
        await _upload(client, auth_a, b"[]", "application/json"),
    ]
    assert [r.status_code for r in refused] == [400] * 5
    assert (await _upload(client, auth_a, body, "text/plain")).status_code == 415
    # Another tenant cannot see the batch.
    missing = await client.get(f"/v1/batches/{first.json()['id']}", headers=auth_b)
    assert missing.status_code == 404


async def test_cancel_stops_pending_items(
    app: Any, client: httpx.AsyncClient, auth_a: dict[str, str]
) -> None:
    r = await _upload(client, auth_a, json.dumps(VALID * 4).encode(), "application/json")
    cancelled = await client.post(r.headers["location"] + "/cancel", headers=auth_a)
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["counts"]["cancelled"] == 12
    assert _drain(app) == 0
    items = (await client.get(r.headers["location"] + "/results", headers=auth_a)).json()
    assert {i["state"] for i in items["items"]} == {"cancelled"}


def _counts(database: Database) -> tuple[int, int]:
    with database.session(write=False) as s:
        screenings = s.exec(select(func.count()).select_from(Screening)).one()
        done = s.exec(
            select(func.count()).select_from(BatchItem).where(BatchItem.state == "done")
        ).one()
    return screenings, done


async def test_an_expired_claim_is_taken_over_and_stored_once(
    app: Any, client: httpx.AsyncClient, auth_a: dict[str, str], database: Database
) -> None:
    await _upload(client, auth_a, json.dumps(VALID).encode(), "application/json")
    db, kb, keys = app.state.db, app.state.releases, app.state.keys
    slow = batches.claim(db, "slow")
    assert len(slow) == 3
    assert batches.claim(db, "other") == []  # leased: nobody else gets them
    later = utcnow() + batches.LEASE + timedelta(seconds=1)
    taken = batches.claim(db, "fast", now=later)
    assert {c.item_id for c in taken} == {c.item_id for c in slow}
    assert batches.process(db, kb, keys, "fast", taken) == 3
    assert batches.process(db, kb, keys, "slow", slow) == 0  # its lease was lost
    assert _counts(database) == (3, 3)


async def test_claims_take_expired_leases_first_then_pending_items_in_row_order(
    app: Any, client: httpx.AsyncClient, auth_a: dict[str, str]
) -> None:
    n = batches.CHUNK + 50
    r = await _upload(client, auth_a, json.dumps([VALID[1]] * n).encode(), "application/json")
    db = app.state.db
    assert batches.has_work(db)
    rows = {}
    with db.session(write=False) as s:
        for item_id, row in s.exec(
            select(BatchItem.id, BatchItem.row).where(
                BatchItem.batch_id == uuid.UUID(r.json()["id"])
            )
        ).all():
            rows[item_id] = row
    first = batches.claim(db, "first")
    assert [rows[c.item_id] for c in first] == list(range(1, batches.CHUNK + 1))
    second = batches.claim(db, "second")
    assert [rows[c.item_id] for c in second] == list(range(batches.CHUNK + 1, n + 1))
    assert not batches.has_work(db)  # everything is leased, nothing has expired
    later = utcnow() + batches.LEASE + timedelta(seconds=1)
    assert batches.has_work(db, now=later)
    batches.process(db, app.state.releases, app.state.keys, "second", second)
    rescue = batches.claim(db, "rescuer", now=later)  # only the first worker's leases expired
    assert [rows[c.item_id] for c in rescue] == list(range(1, batches.CHUNK + 1))
    batches.process(db, app.state.releases, app.state.keys, "rescuer", rescue)
    assert not batches.has_work(db, now=later)
    status = (await client.get(r.headers["location"], headers=auth_a)).json()
    assert (status["state"], status["counts"]["done"]) == ("completed", n)


async def test_an_idle_worker_starts_when_woken(
    app: Any, client: httpx.AsyncClient, auth_a: dict[str, str]
) -> None:
    """The API process wakes its worker after committing a batch, instead of letting it
    sleep out its polling interval (an hour here)."""
    stop, wake = threading.Event(), app.state.batch_bell
    worker = threading.Thread(
        target=batches.run_worker,
        args=(app.state.db, app.state.releases, app.state.keys, stop),
        kwargs={"idle_seconds": 3600, "wake": wake},
    )
    worker.start()
    try:
        time.sleep(0.2)  # let it find nothing and go idle
        r = await _upload(client, auth_a, json.dumps(VALID).encode(), "application/json")
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline and state != "completed":
            await asyncio.sleep(0.05)
            state = (await client.get(r.headers["location"], headers=auth_a)).json()["state"]
        assert state == "completed"
    finally:
        stop.set()
        wake.set()
        worker.join(timeout=60)
    assert not worker.is_alive()


async def test_concurrent_workers_claim_disjoint_items(
    app: Any, client: httpx.AsyncClient, auth_a: dict[str, str], database: Database
) -> None:
    n = batches.CHUNK * 4
    r = await _upload(client, auth_a, json.dumps([VALID[1]] * n).encode(), "application/json")
    batch_id = r.json()["id"]
    claimed: dict[str, list[Any]] = {}
    barrier = threading.Barrier(4)

    def worker(name: str) -> None:
        barrier.wait()
        claimed[name] = batches.claim(app.state.db, name)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [c.item_id for chunk in claimed.values() for c in chunk]
    assert len(ids) == len(set(ids)) == n  # every item claimed exactly once
    # The chunks are screened and stored at the same time: the batch's counters and its
    # completion must come out right however the store transactions interleave.
    barrier = threading.Barrier(4)

    def store(name: str) -> None:
        barrier.wait()
        batches.process(app.state.db, app.state.releases, app.state.keys, name, claimed[name])

    threads = [threading.Thread(target=store, args=(name,)) for name in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _counts(database) == (n, n)
    status = (await client.get(f"/v1/batches/{batch_id}", headers=auth_a)).json()
    assert status["state"] == "completed"
    assert status["counts"]["done"] == n
    assert status["counts"]["pending"] == 0
    print(
        f"SECMETRIC batch_claims dialect={database.writer.dialect.name} workers=4 items={n} "
        f"claimed={len(ids)} duplicates={len(ids) - len(set(ids))}"
    )


def test_a_killed_worker_process_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """A real `python -m app worker` killed with SIGKILL mid-batch; a second worker finishes
    once the first one's leases expire: every item screened exactly once."""
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/w.db",
        "LOG_LEVEL": "WARNING",
    }
    run = [sys.executable, "-m", "app"]
    subprocess.run([*run, "migrate"], env=env, check=True, capture_output=True)
    subprocess.run([*run, "create-tenant", "ngo"], env=env, check=True, capture_output=True)
    from app.auth import Principal
    from app.batch_io import parse
    from app.db import create_database
    from app.kb.loader import load
    from app.keys import KeyRing
    from app.models import Tenant
    from app.releases import Releases
    from app.settings import Settings

    settings = Settings(data_dir=tmp_path, database_url=env["DATABASE_URL"])
    db = create_database(env["DATABASE_URL"])
    keys, kb = KeyRing(settings.master_key_bytes()), Releases(load())
    n = 600
    with db.session() as s:
        tenant = s.exec(select(Tenant)).one()
        principal = Principal("cl_test", tenant.id, frozenset(), "j")
        upload = json.dumps([VALID[0]] * n).encode()
        sealed = batches.seal_upload(keys, tenant.id, parse(upload, "application/json"), upload)
        batches.create(s, principal, keys, sealed, idempotency_key=None)
    proc = subprocess.Popen([*run, "worker", "--name", "doomed"], env=env)
    try:
        deadline = time.monotonic() + 60
        while _counts(db)[1] < batches.CHUNK and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_at_kill = _counts(db)[1]
    assert 0 < done_at_kill < n  # killed mid-batch
    later = utcnow() + batches.LEASE + timedelta(seconds=1)
    while claimed := batches.claim(db, "rescuer", now=later):
        batches.process(db, kb, keys, "rescuer", claimed)
    screenings, done = _counts(db)
    with db.session(write=False) as s:
        ids = s.exec(select(BatchItem.screening_id)).all()
    db.dispose()
    assert (screenings, done) == (n, n)
    assert len(set(ids)) == n
    print(
        f"SECMETRIC batch_worker_killed items={n} done_before_kill={done_at_kill} "
        f"screened={screenings} duplicates={n - len(set(ids))} lost={n - done}"
    )


async def test_the_csv_template_is_served_and_its_example_row_is_valid(
    client: httpx.AsyncClient, auth_a: dict[str, str]
) -> None:
    from app.batch_io import CSV_COLUMNS, parse

    r = await client.get("/v1/batches/template.csv", headers=auth_a)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    header = next(csv.reader(io.StringIO(r.text)))
    assert header == list(CSV_COLUMNS)
    (item,) = parse(r.content, "text/csv")
    assert item.problems == []
    assert item.request is not None
    assert item.client_ref == "case-0001"


def _children_of(pid: int) -> list[int]:
    """Processes whose command line says `serve` started them (``--parent PID``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in argv and b"--parent" in argv and str(pid).encode() in argv:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="reads process command lines from /proc")
def test_serve_runs_worker_processes_that_stop_with_it(tmp_path: Path) -> None:
    """`serve` with no worker thread but one worker process completes a batch; the worker
    stops on the server's SIGTERM, and on its own when the server is killed."""
    env, creds = sqlite_deployment(tmp_path, BATCH_WORKER="false", BATCH_WORKER_PROCESSES="1")

    def serve() -> tuple[subprocess.Popen[bytes], str]:
        proc, port = start_server(env, tmp_path / f"server-{time.monotonic_ns()}.log")
        return proc, f"http://127.0.0.1:{port}"

    def gone(pids: list[int], within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not any(Path(f"/proc/{p}").exists() for p in pids):
                return True
            time.sleep(0.1)
        return False

    proc, base = serve()
    try:
        children = _children_of(proc.pid)
        assert len(children) == 1
        auth = bearer(base, creds)
        r = httpx.post(base + "/v1/batches", json=VALID * 20, headers=auth)
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 60
        while (status := httpx.get(base + r.headers["location"], headers=auth).json())[
            "state"
        ] != "completed":
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        assert status["counts"]["done"] == 60
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        assert gone(children, 10), "the worker outlived the server's SIGTERM"
    finally:
        if proc.poll() is None:
            proc.kill()

    proc, _ = serve()
    children = _children_of(proc.pid)
    assert len(children) == 1
    proc.kill()  # no chance to stop its workers
    proc.wait()
    assert gone(children, 10), "the worker outlived a killed server"


def test_the_server_keeps_answering_while_a_large_upload_is_read(tmp_path: Path) -> None:
    """Parsing and sealing a large upload runs in a thread: other requests are answered
    meanwhile (on the event loop they would all wait for it)."""
    env, creds = sqlite_deployment(
        tmp_path,
        BATCH_WORKER="false",
        BATCH_WORKER_PROCESSES="0",
        RATE_LIMIT_CLIENT="",
        RATE_LIMIT_TENANT="",
    )
    proc, port = start_server(env, tmp_path / "server.log")
    base = f"http://127.0.0.1:{port}"
    try:
        headers = {**bearer(base, creds), "Content-Type": "application/x-ndjson"}
        n = 20_000
        body = "\n".join(
            json.dumps({**VALID[0], "client_ref": f"case-{i}"}) for i in range(n)
        ).encode()
        answer: dict[str, Any] = {}

        def upload() -> None:
            r = httpx.post(base + "/v1/batches", content=body, headers=headers, timeout=300)
            answer["status"], answer["pending"] = r.status_code, r.json()["counts"]["pending"]

        uploader = threading.Thread(target=upload)
        answered = 0
        with httpx.Client(base_url=base, timeout=300) as client:
            uploader.start()
            while uploader.is_alive():
                if client.get("/healthz").status_code == 200 and uploader.is_alive():
                    answered += 1
                time.sleep(0.01)
        uploader.join()
        assert answer == {"status": 202, "pending": n}
        assert answered >= 10, f"only {answered} requests answered during the upload"
        print(f"SECMETRIC upload_concurrency items={n} other_requests_answered={answered}")
    finally:
        stop(proc)
