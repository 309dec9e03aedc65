"""Real ``python -m app serve`` processes for the tests that need one (shutdown, browser,
releases followed by a second process, batch worker processes)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent
START_DEADLINE_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def sqlite_deployment(data_dir: Path, **settings: str) -> tuple[dict[str, str], dict[str, str]]:
    """The environment of a deployment on a fresh SQLite file in ``data_dir`` (``settings``
    added to it), migrated, with one client of tenant "ngo": (env, its credentials)."""
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": f"sqlite:///{data_dir}/app.db",
        "LOG_LEVEL": "WARNING",
        **settings,
    }
    run = [sys.executable, "-m", "app"]
    subprocess.run([*run, "migrate"], env=env, check=True, capture_output=True, cwd=PROJECT_ROOT)
    made = subprocess.run(
        [*run, "create-client", "--tenant", "ngo", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    creds: dict[str, str] = json.loads(made.stdout)
    return env, creds


def bearer(base: str, creds: dict[str, str]) -> dict[str, str]:
    """An Authorization header with a token for ``creds`` from the server at ``base``."""
    form = {
        "grant_type": "client_credentials",
        "client_id": creds["client_id"],
        "client_secret": creds["client_secret"],
    }
    token = httpx.post(base + "/v1/auth/token", data=form).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def start_server(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``serve`` on a free loopback port, its output in ``log``; returned once ``/readyz``
    answers 200 (the test fails with the log if it exits or is not ready in time)."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        text = log.read_text(encoding="utf-8", errors="replace")
        assert proc.poll() is None, f"server exited early:\n{text}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc, port
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"server not ready:\n{text}"
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
