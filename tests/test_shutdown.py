"""Graceful shutdown of a real server process: on SIGTERM it stops accepting connections,
finishes the requests already in flight (201, stored), and exits within its grace period.

The requests are genuinely in flight when the signal arrives: each client has sent the complete
headers of ``POST /v1/screenings`` and only part of the JSON body, and the kernel's view of the
server's sockets (``/proc/net/tcp``) shows the server has read every byte sent, so each request
is being handled and is waiting for the rest of its body.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.examples import SCREENING_EXAMPLES
from tests.servers import PROJECT_ROOT, start_server

GRACE_S = 20  # timeout_graceful_shutdown in ``python -m app serve``
INFLIGHT = 5
PROBE_DEADLINE_S = 10.0
BODY = json.dumps(SCREENING_EXAMPLES["uyghur_activist"]["value"], ensure_ascii=False).encode()

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(
        sys.platform != "linux", reason="reads the kernel's socket queues from /proc/net/tcp"
    ),
]


@dataclass(frozen=True)
class Deployment:
    env: dict[str, str]
    db_path: Path
    client_id: str
    client_secret: str
    logs: Path


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, signing_pem: str) -> Deployment:
    """A data folder with a migrated SQLite database and one client, made with the CLI."""
    data = tmp_path_factory.mktemp("serve")
    db_path = data / "app.db"
    env = {k: v for k, v in os.environ.items() if k not in {"APP_ENV", "SIGNING_KEY_FILE"}}
    env.update(
        DATA_DIR=str(data),
        DATABASE_URL=f"sqlite:///{db_path}",
        RATE_LIMIT_CLIENT="",
        RATE_LIMIT_TENANT="",
        SIGNING_KEY=signing_pem,
        PYTHONUNBUFFERED="1",
        BATCH_WORKER_PROCESSES="0",
    )
    _cli(env, "migrate")
    creds = json.loads(_cli(env, "create-client", "--tenant", "t1", "--json").strip())
    return Deployment(env, db_path, creds["client_id"], creds["client_secret"], data / "logs")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def server(deployment: Deployment) -> Iterator[Server]:
    """``python -m app serve`` on a free port, ready (``/readyz`` 200) when yielded."""
    deployment.logs.mkdir(exist_ok=True)
    log = deployment.logs / f"server-{len(list(deployment.logs.iterdir()))}.log"
    proc, port = start_server(deployment.env, log)
    try:
        yield Server(proc, port, log)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _token(srv: Server, deployment: Deployment) -> str:
    r = httpx.post(
        srv.url("/v1/auth/token"),
        data={
            "grant_type": "client_credentials",
            "client_id": deployment.client_id,
            "client_secret": deployment.client_secret,
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def _start_request(port: int, token: str) -> socket.socket:
    """Send the complete headers of ``POST /v1/screenings`` and the first half of the body."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        f"POST /v1/screenings HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n"
        f"\r\n"
    ).encode()
    sock.sendall(head + BODY[: len(BODY) // 2])
    return sock


def _finish_request(sock: socket.socket) -> bytes:
    """Send the rest of the body and read until the server closes the connection. Whatever
    the server does (answers, resets, has gone), return the bytes received."""
    received = bytearray()
    try:
        sock.sendall(BODY[len(BODY) // 2 :])
        while chunk := sock.recv(65536):
            received += chunk
    except OSError:  # reset or broken pipe: what was received so far is the answer
        pass
    finally:
        sock.close()
    return bytes(received)


def _parse(raw: bytes) -> tuple[int | None, dict[str, Any] | None]:
    """(status, JSON body) of an HTTP/1.1 response; (None, None) if there is no response."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if not sep or len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        return None, None
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    length = int(headers.get("content-length", len(rest)))
    try:
        body = json.loads(rest[:length])
    except ValueError:
        body = None
    return int(parts[1]), body


def _unread_bytes(port: int, clients: list[socket.socket]) -> dict[int, int]:
    """For each client socket, the bytes waiting in the server side's receive queue (sent by
    the client, not yet read by the server), by client port, as the kernel reports them."""
    wanted = {s.getsockname()[1] for s in clients}
    queues: dict[int, int] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        remote_port = int(fields[2].rsplit(":", 1)[1], 16)
        if local_port == port and remote_port in wanted:
            queues[remote_port] = int(fields[4].split(":")[1], 16)
    return queues


def _wait_until_read(srv: Server, clients: list[socket.socket]) -> None:
    """Wait until the server has read everything the clients sent: each request's headers are
    parsed and its handler is waiting for the rest of the body."""
    deadline = time.monotonic() + PROBE_DEADLINE_S
    while True:
        queues = _unread_bytes(srv.port, clients)
        if len(queues) == len(clients) and not any(queues.values()):
            return
        assert time.monotonic() < deadline, f"server did not read the requests: {queues}"
        time.sleep(0.01)


def _new_connection(port: int) -> str:
    """'accepted', 'refused' or 'failed' for a fresh TCP connection to the server."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return "accepted"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "failed"


def _wait_until_not_accepted(port: int) -> str:
    deadline = time.monotonic() + PROBE_DEADLINE_S
    while (state := _new_connection(port)) == "accepted" and time.monotonic() < deadline:
        time.sleep(0.02)
    return state


def _stored(db_path: Path) -> set[str]:
    """The ids in the ``screenings`` table (the other columns are opaque)."""
    conn = sqlite3.connect(db_path)
    try:
        return {uuid.UUID(str(r[0])).hex for r in conn.execute("SELECT id FROM screenings")}
    finally:
        conn.close()


def test_sigterm_completes_requests_in_flight_and_refuses_new_ones(
    deployment: Deployment, server: Server
) -> None:
    token = _token(server, deployment)
    before = _stored(deployment.db_path)
    assert _new_connection(server.port) == "accepted"  # the probe can tell the states apart

    inflight = [_start_request(server.port, token) for _ in range(INFLIGHT)]
    _wait_until_read(server, inflight)
    assert server.proc.poll() is None

    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    new_conn = _wait_until_not_accepted(server.port)
    assert new_conn in {"refused", "failed"}, "a new connection was still accepted after SIGTERM"
    assert server.proc.poll() is None, "the server exited with requests in flight"

    responses = [_parse(_finish_request(sock)) for sock in inflight]
    try:
        exit_code = server.proc.wait(timeout=GRACE_S - (time.monotonic() - signalled))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server did not exit within its {GRACE_S} s grace period")
    log = server.log_text()

    statuses = [status for status, _ in responses]
    ids = {uuid.UUID(body["id"]).hex for _, body in responses if body and "id" in body}
    new_rows = _stored(deployment.db_path) - before
    completed = statuses.count(201)
    print(
        f"SECMETRIC graceful_shutdown inflight={len(inflight)} completed_201={completed} "
        f"stored={len(new_rows)} new_conn_after_sigterm={new_conn} exit_code={exit_code}"
    )
    assert statuses == [201] * INFLIGHT, log
    assert len(ids) == INFLIGHT
    assert new_rows == ids  # exactly the answered screenings, committed before the exit
    # uvicorn re-raises the signal after a clean shutdown: -15 (or 143 through a shell).
    assert exit_code in {0, -signal.SIGTERM, 128 + signal.SIGTERM}, log
    assert "graceful shutdown exceeded" not in log


def test_control_sigkill_leaves_a_request_in_flight_without_a_response(
    deployment: Deployment, server: Server
) -> None:
    """The control: a server that dies without a graceful shutdown answers nothing to the
    request in flight and stores nothing, and the checks above see it."""
    token = _token(server, deployment)
    before = _stored(deployment.db_path)
    sock = _start_request(server.port, token)
    _wait_until_read(server, [sock])

    server.proc.send_signal(signal.SIGKILL)
    assert server.proc.wait(timeout=GRACE_S) == -signal.SIGKILL
    assert _new_connection(server.port) == "refused"

    status, body = _parse(_finish_request(sock))
    assert (status, body) == (None, None)
    assert _stored(deployment.db_path) == before
