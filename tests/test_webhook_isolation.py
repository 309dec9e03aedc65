"""Webhooks isolated per tenant (F9): one tenant's receiver that answers a byte at a time
cannot hold a delivery attempt past its total deadline, and does not delay another tenant's
delivery, which is sent beside it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlmodel import select

from app import webhooks
from app.db import Database
from app.main import create_app
from app.models import WebhookDelivery
from tests.conftest import make_client, token_for

pytestmark = pytest.mark.anyio

DEADLINE_S = 1.0
TRICKLE_EVERY_S = 0.4  # under the deadline: a per-read timeout would never fire
TRICKLE_BYTES = 40  # 16 s of answer


@pytest.fixture
def trickler() -> Iterator[tuple[str, threading.Event]]:
    """A receiver that reads the request and then sends its status line a byte at a time."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * TRICKLE_BYTES:
                    if stop.is_set():
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(TRICKLE_EVERY_S)
            except OSError:
                return  # the sender gave up and closed

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/hook", stop
    stop.set()
    thread.join()
    server.close()


@pytest.fixture
def fast() -> Iterator[tuple[str, list[float]]]:
    arrivals: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            arrivals.append(time.perf_counter())
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", arrivals
    server.shutdown()
    server.server_close()


async def test_a_trickling_receiver_delays_no_other_tenant(
    settings: Any,
    database: Database,
    kb: Any,
    trickler: tuple[str, threading.Event],
    fast: tuple[str, list[float]],
) -> None:
    # Receivers on loopback: allowed for this test only.
    app = create_app(
        settings.model_copy(update={"webhook_allow_private": True}),
        database=database,
        knowledge_base=kb,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await _run(client, app, database, trickler, fast)


async def _run(
    client: httpx.AsyncClient,
    app: Any,
    database: Database,
    trickler: tuple[str, threading.Event],
    fast: tuple[str, list[float]],
) -> None:
    slow_url, _ = trickler
    fast_url, arrivals = fast
    a, b = make_client(database, "tenant-a"), make_client(database, "tenant-b")
    ha = {"Authorization": f"Bearer {await token_for(client, a)}"}
    hb = {"Authorization": f"Bearer {await token_for(client, b)}"}
    for headers, url in ((ha, slow_url), (hb, fast_url)):
        r = await client.post(
            "/v1/webhooks", json={"url": url, "events": ["screening.created"]}, headers=headers
        )
        assert r.status_code == 201, r.text
    body = {"subject": {"occupation": "journalist", "nationalities": ["RU"]}}
    # Tenant A's event first, so a serial sender would reach it first.
    for headers in (ha, hb):
        assert (await client.post("/v1/screenings", json=body, headers=headers)).status_code == 201
    options = webhooks.Options(webhook_allow_private=True, webhook_timeout_seconds=DEADLINE_S)
    start = time.perf_counter()
    attempted = webhooks.deliver_due(database, app.state.keys, options)
    took = time.perf_counter() - start
    assert attempted == 2
    assert len(arrivals) == 1
    other_delay = arrivals[0] - start
    with database.session(write=False) as s:
        outcomes = sorted((d.last_error or "delivered") for d in s.exec(select(WebhookDelivery)))
    print(
        f"SECMETRIC webhook_isolation deadline_s={DEADLINE_S} trickle_every_s={TRICKLE_EVERY_S} "
        f"other_tenant_delay_s={other_delay:.3f} slow_attempt_s={took:.2f} outcomes={outcomes}"
    )
    assert other_delay < 1.0
    assert took < DEADLINE_S + 1.0  # the trickle was cut at the deadline, not 16 s later
    assert outcomes == ["delivered", webhooks.ERR_TIMEOUT]
