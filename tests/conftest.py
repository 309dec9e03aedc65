"""Shared fixtures: one knowledge base and signing key per session; a fresh, migrated database
per test on SQLite and, when reachable (always under CI=true), on PostgreSQL."""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from app import migrate
from app.auth import OPERATOR_SCOPES, OPERATOR_TENANT, TENANT_SCOPES
from app.cli import create_client
from app.db import Database, create_database
from app.kb.loader import KnowledgeBase, load
from app.main import create_app
from app.settings import Environment, Settings

CANARY = "CANARY-7f3a9c-Zeynep"
IN_CI = os.environ.get("CI", "").lower() == "true"
PG_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def signing_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@functools.cache
def _shared_kb() -> KnowledgeBase:
    # Loaded once per process: a forked test process (the mutation run forks one per mutant)
    # inherits it instead of parsing the release again.
    return load()


@pytest.fixture(scope="session")
def kb() -> KnowledgeBase:
    return _shared_kb()


# --- databases ------------------------------------------------------------------------------


def _pg_reachable(url: str) -> str | None:
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # the reason is shown in the skip or failure message
        return f"{type(exc).__name__}"
    return None


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    problem = _pg_reachable(PG_URL)
    if problem is not None:
        message = f"PostgreSQL at TEST_POSTGRES_URL is not reachable ({problem})"
        if IN_CI:
            pytest.fail(message + "; under CI=true this is a failure", pytrace=False)
        pytest.skip(message)
    name = f"ns_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        target = tmp_path / "test.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = create_database(db_url)
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis that shared rate limits are tested on (``.ci/run`` starts one). Without it
    those tests skip, except under CI=true, where it is a failure."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        message = f"Redis at TEST_REDIS_URL is not reachable ({type(exc).__name__})"
        if IN_CI:
            pytest.fail(message + "; under CI=true this is a failure", pytrace=False)
        pytest.skip(message)
    return REDIS_URL


# --- the application ------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path, signing_pem: str) -> Settings:
    return Settings(
        app_env=Environment.TEST,
        data_dir=tmp_path,
        signing_key=SecretStr(signing_pem),
        max_body_bytes=64 * 1024,
        # No background work in tests that start the lifespan (the fuzzer does): batch items
        # and webhook deliveries are processed by the tests that are about them.
        webhook_poll_seconds=0,
        batch_worker=False,
        purge_interval_seconds=0,
    )


@pytest.fixture
def app(settings: Settings, database: Database, kb: KnowledgeBase):  # type: ignore[no-untyped-def]
    return create_app(settings, database=database, knowledge_base=kb)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str
    tenant: str
    scopes: tuple[str, ...]


def make_client(
    database: Database, tenant: str, scopes: tuple[str, ...] = TENANT_SCOPES
) -> Credentials:
    with database.session() as session:
        c, secret = create_client(session, tenant=tenant, scopes=scopes)
        return Credentials(c.client_id, secret, tenant, tuple(c.scopes))


def make_operator(database: Database) -> Credentials:
    """An operator client: knowledge:read and knowledge:admin, no tenant's data."""
    with database.session() as session:
        c, secret = create_client(session, tenant="", scopes=OPERATOR_SCOPES, operator=True)
        return Credentials(c.client_id, secret, OPERATOR_TENANT, tuple(c.scopes))


async def token_for(client: httpx.AsyncClient, creds: Credentials, scope: str | None = None) -> str:
    data = {
        "grant_type": "client_credentials",
        "client_id": creds.client_id,
        "client_secret": creds.client_secret,
    }
    if scope:
        data["scope"] = scope
    r = await client.post("/v1/auth/token", data=data)
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


@pytest.fixture
def tenant_a(database: Database) -> Credentials:
    return make_client(database, "tenant-a")


@pytest.fixture
def tenant_b(database: Database) -> Credentials:
    return make_client(database, "tenant-b")


@pytest.fixture
def operator(database: Database) -> Credentials:
    return make_operator(database)


@pytest.fixture
async def auth_a(client: httpx.AsyncClient, tenant_a: Credentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {await token_for(client, tenant_a)}"}


@pytest.fixture
async def auth_b(client: httpx.AsyncClient, tenant_b: Credentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {await token_for(client, tenant_b)}"}


# --- SECMETRIC lines: collected from every test's output into test-results/secmetrics.json ----

_SECMETRICS: list[dict[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":
        return
    for line in report.capstdout.splitlines():
        if line.startswith("SECMETRIC "):
            _SECMETRICS.append({"test": report.nodeid, "line": line[len("SECMETRIC ") :]})


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import json

    if not _SECMETRICS:
        return
    out = Path(session.config.rootpath) / "test-results" / "secmetrics.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(_SECMETRICS, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("-", f"security figures ({len(_SECMETRICS)} lines in {out.name})")
        for m in _SECMETRICS:  # every line, with the database it ran on where parametrised
            where = m["test"].rsplit("[", 1)[1].rstrip("]") if m["test"].endswith("]") else ""
            reporter.write_line(f"  SECMETRIC {m['line']}" + (f"  [{where}]" if where else ""))
