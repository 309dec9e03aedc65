"""Webhooks: signed deliveries to a real HTTP receiver on loopback, retries on a schedule,
resend, the outbox, deletion with the secret's key, and the SSRF guard (at creation, at
delivery and on every redirect)."""

from __future__ import annotations

import base64
import ipaddress
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import httpx
import pytest
import standardwebhooks
from fastapi import FastAPI
from sqlmodel import select

from app import webhooks
from app.db import Database
from app.kb.loader import KnowledgeBase
from app.keys import KeyRing
from app.main import create_app
from app.models import SubjectKey, Tenant, Webhook, WebhookDelivery, utcnow
from app.settings import Settings
from tests.conftest import CANARY, Credentials, token_for

pytestmark = pytest.mark.anyio

SCREENING = {
    "subject": {"full_name": CANARY, "occupation": "journalist", "nationalities": ["RU"]},
    "notice": {"type": "red_notice", "issuing_country": "RU", "charges": "fraud"},
}
RESPONSE_MARKER = "RECEIVER-RESPONSE-BODY-4b1d"
TIMEOUT = 0.5  # seconds the sender waits; the slow receiver sleeps past it
SLOW = 2.0
PUBLIC_ADDRESS = ipaddress.ip_address("93.184.215.14")


# --- a real HTTP receiver on loopback ---------------------------------------------------------


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers POSTs per path from a script: an int status, "slow" (sleeps past the sender's
    timeout, then 200) or ("redirect", url). The last step of a script repeats."""

    port: int = 0
    hits: list[Hit] = field(default_factory=list)
    scripts: dict[str, list[Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def on(self, path: str, *steps: Any) -> None:
        self.scripts[path] = list(steps)

    def next_step(self, path: str) -> Any:
        with self.lock:
            script = self.scripts.get(path, [200])
            return script.pop(0) if len(script) > 1 else script[0]

    def received(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with receiver.lock:
                receiver.hits.append(Hit(self.path, dict(self.headers.items()), body))
            step = receiver.next_step(self.path)
            if step == "slow":
                time.sleep(SLOW)
                step = 200
            if isinstance(step, tuple):
                self.send_response(302)
                self.send_header("Location", step[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            payload = RESPONSE_MARKER.encode()
            self.send_response(int(step))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    server.daemon_threads = True
    server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()
    thread.join()


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture
async def private_client(
    settings: Settings, database: Database, kb: KnowledgeBase
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with webhook_allow_private on (a receiver on loopback), same keys and database."""
    app = create_app(
        settings.model_copy(update={"webhook_allow_private": True}),
        database=database,
        knowledge_base=kb,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def keys_of(app: FastAPI) -> KeyRing:
    keys: KeyRing = app.state.keys
    return keys


def options(*, allow_private: bool) -> webhooks.Options:
    return webhooks.Options(webhook_allow_private=allow_private, webhook_timeout_seconds=TIMEOUT)


async def make_webhook(
    client: httpx.AsyncClient, headers: dict[str, str], url: str, events: list[str]
) -> tuple[str, str]:
    r = await client.post("/v1/webhooks", json={"url": url, "events": events}, headers=headers)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/webhooks/{r.json()['id']}"
    return str(r.json()["id"]), str(r.json()["secret"])


def deliveries(database: Database, webhook_id: str) -> list[WebhookDelivery]:
    with database.session(write=False) as s:
        rows = s.exec(
            select(WebhookDelivery).where(WebhookDelivery.webhook_id == uuid.UUID(webhook_id))
        ).all()
        return sorted(rows, key=lambda d: (d.created_at, str(d.id)))


def verifies(secret: str, hit: Hit) -> bool:
    try:
        standardwebhooks.Webhook(secret).verify(hit.body, hit.headers)
    except standardwebhooks.WebhookVerificationError:
        return False
    return True


def tenant_id(database: Database, name: str) -> uuid.UUID:
    with database.session(write=False) as s:
        return s.exec(select(Tenant.id).where(Tenant.name == name)).one()


# --- signed deliveries, retries, resend ------------------------------------------------------


async def test_signed_deliveries_retry_on_500_and_timeout_and_resend(
    app: FastAPI,
    private_client: httpx.AsyncClient,
    auth_a: dict[str, str],
    database: Database,
    receiver: Receiver,
) -> None:
    keys = keys_of(app)
    opts = options(allow_private=True)
    ok_id, ok_secret = await make_webhook(
        private_client, auth_a, receiver.url("/ok"), ["screening.created"]
    )
    flaky_id, flaky_secret = await make_webhook(
        private_client, auth_a, receiver.url("/flaky"), ["screening.created"]
    )
    slow_id, slow_secret = await make_webhook(
        private_client, auth_a, receiver.url("/slow"), ["screening.created"]
    )
    batch_only, _ = await make_webhook(
        private_client, auth_a, receiver.url("/batches"), ["batch.completed"]
    )
    secrets = {"/ok": ok_secret, "/flaky": flaky_secret, "/slow": slow_secret}
    assert all(s.startswith("whsec_") for s in secrets.values())
    assert len(set(secrets.values())) == 3
    receiver.on("/flaky", 500, 500, 200)
    receiver.on("/slow", "slow", 200)

    r = await private_client.post("/v1/screenings", json=SCREENING, headers=auth_a)
    assert r.status_code == 201
    screening = r.json()
    # Only subscribers of screening.created got a delivery; a store=false screening none.
    r = await private_client.post("/v1/screenings?store=false", json=SCREENING, headers=auth_a)
    assert r.status_code == 200
    assert [len(deliveries(database, w)) for w in (ok_id, flaky_id, slow_id, batch_only)] == [
        1,
        1,
        1,
        0,
    ]

    t0 = utcnow()
    assert webhooks.deliver_due(database, keys, opts, now=t0) == 3
    (ok,) = deliveries(database, ok_id)
    assert ok.state == "delivered"
    assert ok.last_status == 200
    assert ok.attempts == 1
    (flaky,) = deliveries(database, flaky_id)
    assert flaky.state == "pending"
    assert flaky.last_status == 500
    assert flaky.last_error == webhooks.ERR_STATUS
    (slow,) = deliveries(database, slow_id)
    assert slow.state == "pending"
    assert slow.last_error == webhooks.ERR_TIMEOUT
    assert slow.last_status is None
    first_retry = flaky.next_attempt_at
    assert first_retry > t0
    assert slow.next_attempt_at > t0

    # Nothing is due before the retry time.
    assert webhooks.deliver_due(database, keys, opts, now=t0 + timedelta(seconds=1)) == 0

    assert webhooks.deliver_due(database, keys, opts, now=first_retry) == 2
    (flaky,) = deliveries(database, flaky_id)
    assert flaky.state == "pending"
    assert flaky.attempts == 2
    second_retry = flaky.next_attempt_at
    assert second_retry - first_retry > first_retry - t0  # the backoff grows
    (slow,) = deliveries(database, slow_id)
    assert slow.state == "delivered"
    assert slow.attempts == 2

    assert webhooks.deliver_due(database, keys, opts, now=second_retry) == 1
    (flaky,) = deliveries(database, flaky_id)
    assert flaky.state == "delivered"
    assert flaky.attempts == 3
    assert flaky.last_error is None

    # Resend: a new delivery, the same payload, a new webhook-id.
    r = await private_client.post(f"/v1/webhooks/{ok_id}/deliveries/{ok.id}/resend", headers=auth_a)
    assert r.status_code == 202, r.text
    resent_id = r.json()["id"]
    assert resent_id != str(ok.id)
    assert r.json()["state"] == "pending"
    assert webhooks.deliver_due(database, keys, opts) == 1
    listed = await private_client.get(f"/v1/webhooks/{ok_id}/deliveries", headers=auth_a)
    assert [d["state"] for d in listed.json()["items"]] == ["delivered", "delivered"]

    hits = receiver.hits
    signed_valid = sum(verifies(secrets[h.path], h) for h in hits)
    # Every attempt of one delivery carries the same webhook-id; different deliveries differ.
    ids_by_path = {p: {h.headers["webhook-id"] for h in receiver.received(p)} for p in secrets}
    assert ids_by_path["/flaky"] == {str(flaky.id)}
    assert ids_by_path["/slow"] == {str(slow.id)}
    assert ids_by_path["/ok"] == {str(ok.id), resent_id}
    ok_hits = receiver.received("/ok")
    assert ok_hits[0].body == ok_hits[1].body
    payload = standardwebhooks.Webhook(ok_secret).verify(ok_hits[0].body, ok_hits[0].headers)
    assert payload["type"] == "screening.created"
    assert payload["data"] == {
        "screening_id": screening["id"],
        "flag": screening["flag"],
        "score": screening["score"],
        "created_at": payload["data"]["created_at"],
    }
    assert all(CANARY.encode() not in h.body for h in hits)
    # Controls: the verification fails with another secret or a changed body.
    assert not verifies(flaky_secret, ok_hits[0])
    tampered = Hit("/ok", ok_hits[0].headers, ok_hits[0].body.replace(b'"score"', b'"Score"'))
    assert not verifies(ok_secret, tampered)
    # No response body is stored.
    all_rows = [d for w in (ok_id, flaky_id, slow_id) for d in deliveries(database, w)]
    assert all(RESPONSE_MARKER not in (d.last_error or "") for d in all_rows)
    retried = sum(d.attempts > 1 for d in all_rows)

    print(
        f"SECMETRIC webhooks deliveries={len(hits)} signed_valid={signed_valid} retried={retried}"
    )
    assert len(hits) == 7  # ok, resend, flaky x3, slow x2
    assert signed_valid == len(hits)
    assert retried == 2


async def test_a_delivery_that_keeps_failing_ends_failed_after_more_than_a_day(
    app: FastAPI,
    private_client: httpx.AsyncClient,
    auth_a: dict[str, str],
    database: Database,
    receiver: Receiver,
) -> None:
    webhook_id, _ = await make_webhook(
        private_client, auth_a, receiver.url("/down"), ["batch.completed"]
    )
    receiver.on("/down", 503)
    with database.session() as s:
        assert webhooks.enqueue(s, tenant_id(database, "tenant-a"), "batch.completed", {"n": 1})
    (row,) = deliveries(database, webhook_id)
    created, now = row.created_at, row.next_attempt_at
    for _ in range(webhooks.MAX_ATTEMPTS):
        assert row.state == "pending"
        assert webhooks.deliver_due(database, keys_of(app), options(allow_private=True), now=now)
        (row,) = deliveries(database, webhook_id)
        if row.state == "pending":
            now = row.next_attempt_at
    assert row.state == "failed"
    assert row.attempts == webhooks.MAX_ATTEMPTS == len(receiver.received("/down"))
    assert row.last_status == 503
    assert now - created >= timedelta(hours=24)
    # Failed deliveries are not attempted again.
    later = now + timedelta(days=3)
    assert webhooks.deliver_due(database, keys_of(app), options(allow_private=True), now=later) == 0


async def test_concurrent_senders_send_each_delivery_once(
    app: FastAPI,
    private_client: httpx.AsyncClient,
    auth_a: dict[str, str],
    database: Database,
    receiver: Receiver,
) -> None:
    hook, _ = await make_webhook(private_client, auth_a, receiver.url("/many"), ["batch.completed"])
    tenant = tenant_id(database, "tenant-a")
    with database.session() as s:
        for n in range(40):
            webhooks.enqueue(s, tenant, "batch.completed", {"n": n})
    counts: list[int] = []
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            # A generous deadline: this test is about claiming each delivery once, and a
            # loaded machine must not turn a slow local answer into a timeout.
            roomy = webhooks.Options(webhook_allow_private=True, webhook_timeout_seconds=10)
            counts.append(webhooks.deliver_due(database, keys_of(app), roomy))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [h.headers["webhook-id"] for h in receiver.received("/many")]
    assert errors == []
    assert sum(counts) == len(ids) == len(set(ids)) == 40
    assert {d.state for d in deliveries(database, hook)} == {"delivered"}


async def test_the_server_delivers_in_the_background(
    settings: Settings,
    database: Database,
    kb: KnowledgeBase,
    tenant_a: Credentials,
    receiver: Receiver,
) -> None:
    """The lifespan's delivery task sends a screening's event without anyone calling it."""
    live = settings.model_copy(update={"webhook_allow_private": True, "webhook_poll_seconds": 0.05})
    app = create_app(live, database=database, knowledge_base=kb)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            headers = {"Authorization": f"Bearer {await token_for(c, tenant_a)}"}
            _, secret = await make_webhook(c, headers, receiver.url("/live"), ["screening.created"])
            r = await c.post("/v1/screenings", json=SCREENING, headers=headers)
            assert r.status_code == 201
            for _ in range(400):  # until the background task has sent it (bounded)
                if receiver.received("/live"):
                    break
                await anyio.sleep(0.025)
    (hit,) = receiver.received("/live")
    assert verifies(secret, hit)


# --- the outbox, listing, deletion -----------------------------------------------------------


async def test_enqueue_is_part_of_the_callers_transaction(
    private_client: httpx.AsyncClient,
    auth_a: dict[str, str],
    auth_b: dict[str, str],
    database: Database,
) -> None:
    a_hook, _ = await make_webhook(
        private_client, auth_a, "https://ngo.example/a", ["batch.completed"]
    )
    b_hook, _ = await make_webhook(
        private_client, auth_b, "https://ngo.example/b", ["batch.completed"]
    )
    tenant = tenant_id(database, "tenant-a")

    def failing_transaction() -> None:
        with database.session() as s:
            assert webhooks.enqueue(s, tenant, "batch.completed", {"batch_id": uuid.uuid4()})
            raise RuntimeError("the caller's transaction fails")

    with pytest.raises(RuntimeError):
        failing_transaction()
    assert deliveries(database, a_hook) == []
    with database.session() as s:
        assert webhooks.enqueue(s, tenant, "batch.completed", {"batch_id": uuid.uuid4()}) == 1
        assert webhooks.enqueue(s, tenant, "screening.created", {}) == 0
    assert len(deliveries(database, a_hook)) == 1
    assert deliveries(database, b_hook) == []  # another tenant's webhook gets nothing


async def test_deliveries_page_with_a_cursor(
    private_client: httpx.AsyncClient, auth_a: dict[str, str], database: Database
) -> None:
    hook, _ = await make_webhook(
        private_client, auth_a, "https://ngo.example/a", ["batch.completed"]
    )
    tenant = tenant_id(database, "tenant-a")
    for n in range(5):
        with database.session() as s:
            webhooks.enqueue(s, tenant, "batch.completed", {"n": n})
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await private_client.get(
            f"/v1/webhooks/{hook}/deliveries", params=params, headers=auth_a
        )
        assert r.status_code == 200
        pages += 1
        seen += [d["id"] for d in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(str(d.id) for d in deliveries(database, hook))
    assert len(set(seen)) == 5


async def test_delete_removes_the_webhook_its_deliveries_and_its_secrets_key(
    app: FastAPI, private_client: httpx.AsyncClient, auth_a: dict[str, str], database: Database
) -> None:
    hook, _ = await make_webhook(
        private_client, auth_a, "https://ngo.example/a", ["batch.completed"]
    )
    keep, _ = await make_webhook(
        private_client, auth_a, "https://ngo.example/b", ["batch.completed"]
    )
    with database.session() as s:
        webhooks.enqueue(s, tenant_id(database, "tenant-a"), "batch.completed", {"n": 1})
    r = await private_client.get("/v1/webhooks", headers=auth_a)
    assert {w["id"] for w in r.json()["items"]} == {hook, keep}
    assert "secret" not in r.text
    assert "whsec_" not in r.text

    r = await private_client.delete(f"/v1/webhooks/{hook}", headers=auth_a)
    assert r.status_code == 204
    assert (await private_client.get(f"/v1/webhooks/{hook}", headers=auth_a)).status_code == 404
    assert deliveries(database, hook) == []
    assert len(deliveries(database, keep)) == 1
    with database.session(write=False) as s:
        key_ids = set(s.exec(select(SubjectKey.id)).all())
        stored = s.exec(select(Webhook.secret_sealed)).all()
    assert uuid.UUID(hook) not in key_ids
    assert uuid.UUID(keep) in key_ids  # control: the kept webhook's key is there
    assert all(b"whsec_" not in sealed for sealed in stored)  # secrets are stored sealed


# --- SSRF ------------------------------------------------------------------------------------

REFUSED_AT_CREATE = [
    "ftp://ngo.example/hook",
    "file:///etc/passwd",
    "http://127.0.0.1/hook",
    "http://10.0.0.1/hook",
    "http://[::1]/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0/hook",
    "http://2130706433/hook",
    "http://0x7f.1/hook",
    "http://192.168.1.10:8080/hook",
    "http://100.64.0.1/hook",
    "https://user:pass@ngo.example/hook",
    "not a url",
]


async def test_ssrf_destinations_are_refused_at_creation_delivery_and_redirect(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth_a: dict[str, str],
    database: Database,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = keys_of(app)
    refused = attempted = 0

    # 1. Creation: non-http(s) schemes and literal non-public addresses are a 422.
    for url in REFUSED_AT_CREATE:
        r = await client.post(
            "/v1/webhooks", json={"url": url, "events": ["batch.completed"]}, headers=auth_a
        )
        attempted += 1
        refused += r.status_code == 422
        assert r.status_code == 422, url
        assert url not in r.text
    # Control: a public name is accepted (it is resolved at delivery).
    await make_webhook(client, auth_a, "https://ngo.example/hook", ["batch.completed"])

    # 2. Delivery: a name that resolves to loopback is refused before any connection.
    local_hook, _ = await make_webhook(
        client, auth_a, receiver.url("/ok", host="localhost"), ["batch.completed"]
    )
    with database.session() as s:
        webhooks.enqueue(s, tenant_id(database, "tenant-a"), "batch.completed", {"n": 1})
    webhooks.deliver_due(database, keys, options(allow_private=False), limit=10)
    (row,) = deliveries(database, local_hook)
    attempted += 1
    refused += row.last_error == webhooks.ERR_REFUSED
    assert row.state == "pending"
    assert row.last_error == webhooks.ERR_REFUSED
    assert receiver.received("/ok") == []
    # Control: with private destinations allowed the same delivery arrives.
    webhooks.deliver_due(
        database, keys, options(allow_private=True), now=row.next_attempt_at, limit=10
    )
    (row,) = deliveries(database, local_hook)
    assert row.state == "delivered"
    assert len(receiver.received("/ok")) == 1

    # 3. A redirect from an allowed receiver to a private address is refused. "localhost"
    # resolves to a public address for the check here (as a rebinding name would), so the
    # first hop is allowed; the redirect names 127.0.0.1 literally.
    def public(host: str, port: int) -> list[Any]:
        if host == "localhost":
            return [PUBLIC_ADDRESS]
        return [ipaddress.ip_address(host)]

    monkeypatch.setattr(webhooks, "resolve", public)
    receiver.on("/to-private", ("redirect", receiver.url("/target")))
    receiver.on("/to-allowed", ("redirect", receiver.url("/target", host="localhost")))
    private_hop, _ = await make_webhook(
        client, auth_a, receiver.url("/to-private", host="localhost"), ["screening.created"]
    )
    allowed_hop, _ = await make_webhook(
        client, auth_a, receiver.url("/to-allowed", host="localhost"), ["screening.created"]
    )
    assert (await client.post("/v1/screenings", json=SCREENING, headers=auth_a)).status_code == 201
    webhooks.deliver_due(database, keys, options(allow_private=False), limit=10)
    (row,) = deliveries(database, private_hop)
    attempted += 1
    refused += row.last_error == webhooks.ERR_REFUSED
    assert row.state == "pending"
    assert row.last_error == webhooks.ERR_REFUSED
    assert len(receiver.received("/to-private")) == 1
    # Control: the same redirect to an allowed name is followed and delivered.
    (row,) = deliveries(database, allowed_hop)
    assert row.state == "delivered", row.last_error
    assert len(receiver.received("/target")) == 1  # only the allowed redirect arrived

    # 4. More than three redirects are not followed.
    receiver.on("/loop", ("redirect", receiver.url("/loop", host="localhost")))
    loop_hook, _ = await make_webhook(
        client, auth_a, receiver.url("/loop", host="localhost"), ["batch.completed"]
    )
    with database.session() as s:
        webhooks.enqueue(s, tenant_id(database, "tenant-a"), "batch.completed", {"n": 2})
    webhooks.deliver_due(database, keys, options(allow_private=False), limit=10)
    (row,) = deliveries(database, loop_hook)
    assert row.last_error == webhooks.ERR_REDIRECTS
    assert len(receiver.received("/loop")) == webhooks.MAX_REDIRECTS + 1

    print(f"SECMETRIC webhooks_ssrf refused={refused} attempted={attempted}")
    assert refused == attempted == len(REFUSED_AT_CREATE) + 2


@pytest.mark.parametrize(
    ("address", "forbidden"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.0.1", True),
        ("169.254.169.254", True),
        ("100.64.0.1", True),
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("240.0.0.1", True),
        ("255.255.255.255", True),
        ("::1", True),
        ("::", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("ff02::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:10.0.0.1", True),
        ("64:ff9b::a9fe:a9fe", True),
        ("2002:7f00:1::", True),
        ("::ffff:1.1.1.1", True),  # IPv4-mapped addresses are refused whatever they embed
        # Controls: public addresses pass.
        ("93.184.215.14", False),
        ("1.1.1.1", False),
        ("2606:4700:4700::1111", False),
    ],
)
async def test_address_classification(address: str, forbidden: bool) -> None:
    assert webhooks.is_forbidden_address(ipaddress.ip_address(address)) is forbidden


async def test_secret_format_is_standard_webhooks() -> None:
    secret = webhooks.new_secret()
    raw = secret.removeprefix("whsec_")
    assert secret.startswith("whsec_")
    assert 24 <= len(base64.b64decode(raw, validate=True)) <= 32
    assert webhooks.new_secret() != secret
