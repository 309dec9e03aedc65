"""Property-based fuzzing of the whole API against its own OpenAPI document, as two tenants.

Schemathesis loads the document the application serves, generates requests for every operation
(examples, coverage, fuzzing and stateful phases: a stateful run follows the document's
``links``, so a screening created by one tenant is then read and erased by id) and checks each
response: no 5xx, a documented status, a documented content type and a body matching the
documented schema. The two tenants are schemathesis "peers": its object-level authorization
check (ST402) replays a read of an object one tenant created, or listed, as the other tenant and
fails when the other tenant gets the object.

Independently of schemathesis, a tap around the application records every request's tenant (from
its token) and every object's owner, and counts the cross-tenant GETs and DELETEs by id and how
many of them succeeded. The first test proves the check had the other tenant's screenings and
clients to judge and no such request succeeded; the second removes the tenant filter from the
by-id lookup and proves the check then reports both leaks, so the first test's zero cannot come
from a check that never fires.

Generation is deterministic (fixed seed, derandomized, no example database, no cache) and
bounded per operation by ``max-examples``.
"""

from __future__ import annotations

import base64
import copy
import importlib
import json
import re
import sys
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from jose import jwt
from schemathesis.engine import StopReason, events, from_schema
from schemathesis.python import asgi
from sqlmodel import Session, select

from app.db import Database
from app.errors import NotFound
from app.kb.loader import KnowledgeBase
from app.main import create_app
from app.models import Client
from app.settings import Settings
from tests.conftest import make_client

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

TENANTS = ("tenant-a", "tenant-b")
NOT_FUZZED = [{"include-operation-id": "delete_client_v1_clients__id__delete"}]
SERVER_ERROR_CHECKS = {"not_a_server_error"}
SCHEMA_CHECKS = {
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
}
BOLA_CHECK = "object_level_authorization"
CHECKS = SERVER_ERROR_CHECKS | SCHEMA_CHECKS | {BOLA_CHECK}
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{8,255}$")
# Routes whose path id names a tenant-owned object.
OWNED_BY_ID = re.compile(r"^/v1/(screenings|clients)/([0-9a-fA-F-]{36})$")


@dataclass
class Tap:
    """Wraps the application: records each request's tenant and each new object's owner."""

    app: ASGIApp
    owners: dict[str, str] = field(default_factory=dict)  # object id -> tenant id
    by_id: list[tuple[str, str, str, int]] = field(default_factory=list)  # tenant, kind, id, status
    odd: Counter[str] = field(default_factory=Counter)  # odd-input class -> requests carrying it
    statuses: Counter[int] = field(default_factory=Counter)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tenant = _tenant_of(scope)
        status = 0
        body = bytearray()
        sent = bytearray()

        async def reading() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                sent.extend(message.get("body", b""))
            return message

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
            await send(message)

        await self.app(scope, reading, record)
        path, method = scope["path"], scope["method"]
        self.statuses[status] += 1
        for name in odd_classes(scope.get("query_string", b""), bytes(sent)):
            self.odd[name] += 1
        if tenant is None:
            return
        if method == "POST" and path == "/v1/screenings" and status == 201:
            self.owners[json.loads(body)["id"]] = tenant
        match = OWNED_BY_ID.match(path)
        if match and method in ("GET", "DELETE"):
            self.by_id.append((tenant, match[1], match[2].lower(), status))

    def cross_tenant(self) -> list[tuple[str, str, str, int]]:
        """GETs and DELETEs by id of an object another tenant owns."""
        return [r for r in self.by_id if self.owners.get(r[2], r[0]) != r[0]]


# --- odd input (F2-F5): generated into every operation's query and body -------------------

# Dates a datetime holds only before it is moved to UTC (or not at all), and their cursors.
EDGE_DATES = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00+14:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999-14:00",
            "9999-12-31T23:59:59.999999+23:59",
            "0001-01-01",
            "9999-12-31T23:59:60Z",
        ]
    ),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 2)).map(
        lambda d: d.replace(tzinfo=timezone(timedelta(hours=14))).isoformat()
    ),
    st.datetimes(min_value=datetime(9999, 12, 30), max_value=datetime(9999, 12, 31, 23)).map(
        lambda d: d.replace(tzinfo=timezone(-timedelta(hours=14))).isoformat()
    ),
)
EDGE_CURSORS = EDGE_DATES.map(
    lambda at: base64.urlsafe_b64encode(f"{at}|{uuid.uuid4()}".encode()).decode().rstrip("=")
)
# Lone surrogates and NUL (bodies: JSON escapes them), control characters, and fields far
# past every documented length.
SURROGATE_OR_NUL = st.text(
    alphabet=st.one_of(st.characters(categories=["Cs"]), st.just("\x00"), st.characters()),
    min_size=1,
    max_size=12,
).filter(lambda t: any(c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF for c in t))
CONTROL = st.text(
    alphabet=st.one_of(st.characters(categories=["Cc"]), st.characters(categories=["L"])),
    min_size=1,
    max_size=12,
).filter(lambda t: any(ord(c) < 0x20 and c not in "\t\n\r" for c in t))
HUGE = st.integers(10_001, 250_000).map(lambda n: "x" * n)
DEPTHS = st.integers(17, 400)  # past the 16 levels items may nest; json.dumps recurses
ODD_QUERY = st.one_of(CONTROL, HUGE.map(lambda t: t[:20_000]))
ODD_BODY = st.one_of(SURROGATE_OR_NUL, CONTROL, HUGE)
DATE_PARAMS = {"created_after", "created_before"}


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every value in a JSON document, containers included."""
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _leaves(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _leaves(child, (*path, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copied = copy.copy(value)
    copied[path[0]] = _replace(value[path[0]], path[1:], new)
    return copied


def _nest(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = [value]
    return value


def odd_query(context: Any, query: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    """Date filters and cursors at the edges of what a datetime holds; any other parameter
    with control characters or far past its length."""
    if not query:
        return st.just(query)
    choices = []
    for name in query:
        if name in DATE_PARAMS:
            choices.append(EDGE_DATES.map(lambda v, n=name: {**query, n: v}))
        elif name == "cursor":
            choices.append(EDGE_CURSORS.map(lambda v, n=name: {**query, n: v}))
        else:
            choices.append(ODD_QUERY.map(lambda v, n=name: {**query, n: v}))
    return st.one_of(choices)


def odd_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    """Any value of a JSON body (client_ref included, added where absent) replaced by a lone
    surrogate, NUL, a control character, a huge string, or nested past the allowed depth;
    an NDJSON or CSV upload gets such a line."""
    if isinstance(body, dict | list):
        if isinstance(body, dict) and "notice" in body:
            body = {**body, "client_ref": "ref"}
        paths = _leaves(body)
        strings = st.sampled_from(paths).flatmap(
            lambda p: ODD_BODY.map(lambda v: _replace(body, p, v))
        )
        deep = st.tuples(st.sampled_from(paths), DEPTHS).map(
            lambda pd: _replace(body, pd[0], _nest("x", pd[1]))
        )
        return st.one_of(strings, deep)
    if isinstance(body, str):
        line = st.one_of(
            ODD_BODY.map(lambda v: json.dumps({"client_ref": v})),
            DEPTHS.map(lambda d: "[" * d + "]" * d),
            HUGE.map(lambda v: f"client_ref,charges\nref,{v}"),
        )
        return line.map(lambda extra: body + "\n" + extra)
    return st.just(body)


def odd_classes(query: bytes, body: bytes) -> list[str]:
    """The odd-input classes a request carries (to show the generation reached them)."""
    found = []
    if re.search(rb"(0001-01-0[12]|9999-12-3[01])", query) or b"cursor=" in query:
        found.append("edge_dates_or_cursors")
    if re.search(rb"\\u[dD][89abAB]", body) or b"\\u0000" in body:
        found.append("surrogates_or_nul")
    if b"[" * 17 in body:
        found.append("deep_nesting")
    if b"x" * 10_001 in body or b"x" * 10_001 in query:
        found.append("huge_fields")
    return found


def _tenant_of(scope: Scope) -> str | None:
    headers = dict(scope["headers"])
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() != "bearer":
        return None
    try:
        tenant = jwt.get_unverified_claims(token).get("tenant")
    except Exception:  # a fuzzed token; the application rejects it
        return None
    return tenant if isinstance(tenant, str) else None


@dataclass
class Outcome:
    documented: int  # operations in the served OpenAPI document
    operations: int  # operations that got at least one generated case
    cases: int
    failures: dict[str, set[tuple[str, str]]]  # check name -> {(operation, title)}
    messages: list[str]
    cross_tenant: list[tuple[str, str, str, int]]
    odd: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)

    def count(self, names: set[str]) -> int:
        return sum(len(self.failures.get(n, ())) for n in names)

    @property
    def cross_tenant_hits(self) -> int:
        return sum(1 for r in self.cross_tenant if 200 <= r[3] < 300)


def _login(database: Database, tenant: str) -> dict[str, Any]:
    """A WFC entry that gets the tenant's token from POST /v1/auth/token."""
    creds = make_client(database, tenant)
    form = f"grant_type=client_credentials&client_id={creds.client_id}&client_secret="
    return {
        "name": tenant,
        "loginEndpointAuth": {
            "endpoint": "/v1/auth/token",
            "verb": "POST",
            "contentType": "application/x-www-form-urlencoded",
            "payloadRaw": form + creds.client_secret,
            "token": {
                "extractFrom": "body",
                "extractSelector": "/access_token",
                "sendIn": "header",
                "sendName": "Authorization",
                "sendTemplate": "Bearer {token}",
            },
        },
    }


def fuzz(
    settings: Settings,
    database: Database,
    kb: KnowledgeBase,
    workdir: Path,
    *,
    max_examples: int,
    phases: tuple[str, ...] = ("examples", "coverage", "fuzzing", "stateful"),
    odd: bool = False,
) -> Outcome:
    # Rate limits would turn later requests into 429s and cut the run short.
    settings = settings.model_copy(
        update={
            "rate_limit_client": "",
            "rate_limit_tenant": "",
            "rate_limit_token_address": "",
            "rate_limit_token_client": "",
        }
    )
    tap = Tap(create_app(settings, database=database, knowledge_base=kb))
    auth_file = workdir / "wfc-auth.json"
    auth_file.write_text(json.dumps({"auth": [_login(database, t) for t in TENANTS]}))
    with database.session() as session:
        tap.owners.update({str(c.id): str(c.tenant_id) for c in session.exec(select(Client))})
    config = schemathesis.Config.from_dict(
        {
            "seed": 20261127,
            "cache": {"enabled": False},
            "generation": {"deterministic": True, "database": "none", "max-examples": max_examples},
            "checks": {
                "enabled": False,
                **{name: {"enabled": True} for name in (SERVER_ERROR_CHECKS if odd else CHECKS)},
            },
            "phases": {
                **{p: {"enabled": p in phases} for p in ("examples", "coverage", "fuzzing")},
                "stateful": {
                    "enabled": "stateful" in phases,
                    "max-steps": 20,
                    # The document's links, and links inferred from Location headers. Inference
                    # from response schemas is left out: its choices depend on the interpreter's
                    # history (the same run gives other cases after other tests in one process).
                    "inference": {"algorithms": ["location-headers"]},
                },
            },
            "auth": {"wfc": {"path": str(auth_file), "peers": list(TENANTS)}},
            # The knowledge base is one read-only reference set shared by every tenant: an object
            # reached from a tenant's screening is not that tenant's.
            "operations": [
                {"include-tag": "knowledge", "checks": {BOLA_CHECK: {"enabled": False}}},
                # Deleting a client revokes the fuzzer's own credentials (or, in the mutation
                # run, the other tenant's) and ends the run early; tests/test_revocation.py
                # and the authz matrix cover it.
                *[{**op, "enabled": False} for op in NOT_FUZZED],
            ],
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", tap, config=config)
    issued = Counter[str]()

    @schema.hook
    def map_headers(context: Any, headers: dict[str, Any] | None) -> dict[str, Any] | None:
        # A fresh valid Idempotency-Key per case: a key reused with another body is a correct
        # 422 and would stop the screening's stateful chain. Invalid keys stay invalid.
        key = headers.get("Idempotency-Key") if headers else None
        if headers and isinstance(key, str) and IDEMPOTENCY_KEY.match(key):
            issued["key"] += 1
            headers["Idempotency-Key"] = f"fuzz-{issued['key']:08d}"
        return headers

    if odd:
        schema.hook("flatmap_query")(odd_query)
        schema.hook("flatmap_body")(odd_body)

    operations: set[str] = set()
    cases = 0
    failures: dict[str, set[tuple[str, str]]] = {}
    messages: list[str] = []
    stop_reason = None
    try:
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                for node in event.recorder.cases.values():
                    cases += 1
                    operations.add(node.value.operation.label)
                for checks in event.recorder.checks.values():
                    for check in checks:
                        if check.failure_info is None:
                            continue
                        failure = check.failure_info.failure
                        key = (failure.operation, failure.title)
                        if key not in failures.setdefault(check.name, set()):
                            messages.append(f"[{check.name}] {failure.title}: {failure.message}")
                        failures[check.name].add(key)
            elif isinstance(event, events.NonFatalError):
                messages.append(f"[error] {event.label}: {event.info.format()}")
                failures.setdefault("error", set()).add((event.label, event.info.title))
            elif isinstance(event, events.FatalError):
                raise event.exception
            elif isinstance(event, events.EngineFinished):
                stop_reason = event.stop_reason
    finally:
        asgi.shutdown_lifespans()
    assert stop_reason == StopReason.COMPLETED, stop_reason
    documented = sum(len(methods) for methods in schema.raw_schema["paths"].values())
    documented -= len(NOT_FUZZED)
    return Outcome(
        documented,
        len(operations),
        cases,
        failures,
        messages,
        tap.cross_tenant(),
        odd=tap.odd,
        statuses=tap.statuses,
    )


def test_fuzz_finds_no_server_error_schema_violation_or_cross_tenant_read(
    settings: Settings, database: Database, kb: KnowledgeBase, tmp_path: Path
) -> None:
    out = fuzz(settings, database, kb, tmp_path, max_examples=25)
    server_errors = out.count(SERVER_ERROR_CHECKS)
    schema_violations = out.count(SCHEMA_CHECKS)
    bola = out.count({BOLA_CHECK})
    print(
        f"SECMETRIC fuzz operations={out.operations} cases={out.cases} "
        f"server_errors={server_errors} schema_violations={schema_violations} bola={bola} "
        f"cross_tenant_requests={len(out.cross_tenant)} cross_tenant_hits={out.cross_tenant_hits}"
    )
    assert not out.messages, "\n\n".join(out.messages)
    assert out.operations == out.documented
    # The check had the other tenant's objects to judge, by screening id and by client id ...
    kinds = {kind for _, kind, _, _ in out.cross_tenant}
    assert kinds == {"screenings", "clients"}, out.cross_tenant
    # ... and, independently of schemathesis, none of those requests succeeded.
    assert out.cross_tenant_hits == 0, out.cross_tenant


def test_fuzz_reports_cross_tenant_reads_when_the_tenant_filter_is_removed(
    settings: Settings,
    database: Database,
    kb: KnowledgeBase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Control: by-id lookups that ignore the tenant must make the check fire, for both kinds
    of tenant-owned object. Listings keep their filter, so the other tenant cannot see the id
    listed, which is how the check tells an owned object from a shared one."""
    from app import tenancy

    lookups = ("app.screenings", "app.api.clients")  # the modules that load owned rows by id
    for name in lookups:
        importlib.import_module(name)

    def get_any_tenant(session: Session, model: Any, object_id: Any, tenant_id: uuid.UUID) -> Any:
        try:
            key = uuid.UUID(str(object_id))
        except ValueError:
            raise NotFound() from None
        row = session.exec(select(model).where(model.id == key)).first()
        if row is None:
            raise NotFound()
        return row

    patched = [
        name
        for name, module in list(sys.modules.items())
        if (name == "app" or name.startswith("app."))
        and getattr(module, "get_owned", None) is tenancy.get_owned
    ]
    for name in patched:
        monkeypatch.setattr(sys.modules[name], "get_owned", get_any_tenant)
    assert set(lookups) <= set(patched), patched

    out = fuzz(
        settings,
        database,
        kb,
        tmp_path,
        max_examples=25,
        phases=("examples", "fuzzing", "stateful"),
    )
    bola_found = out.count({BOLA_CHECK})
    print(
        f"SECMETRIC fuzz_mutation tenant_filter_removed={int(bool(patched))} "
        f"bola_found={bola_found} patched_modules={len(patched)} "
        f"cross_tenant_hits={out.cross_tenant_hits}"
    )
    assert bola_found >= 1, out.messages
    # Both kinds of tenant-owned object the first test judged are shown to be detectable
    # (batches and webhooks, looked up the same way, may leak too).
    leaked = {operation for operation, _ in out.failures[BOLA_CHECK]}
    assert leaked >= {"GET /v1/screenings/{screening_id}", "GET /v1/clients/{id}"}, out.messages
    assert out.cross_tenant_hits >= 1, out.cross_tenant
    # The mutation leaks objects; it does not break the contract.
    assert out.count(SERVER_ERROR_CHECKS | SCHEMA_CHECKS) == 0, out.messages


def test_fuzz_with_odd_inputs_in_every_operation_gets_no_server_error(
    settings: Settings, database: Database, kb: KnowledgeBase, tmp_path: Path
) -> None:
    """The fuzzer's generation steered to the odd-input classes (F2-F5): every query gets edge
    dates, edge cursors, control characters or huge values, every JSON body a lone surrogate,
    NUL, a control character, a huge string or nesting past the limit in one of its values
    (client_ref included), every upload such a line. 0 5xx, and every class was sent."""
    out = fuzz(settings, database, kb, tmp_path, max_examples=25, phases=("fuzzing",), odd=True)
    server_errors = sum(n for status, n in out.statuses.items() if status >= 500)
    print(
        f"SECMETRIC fuzz_odd operations={out.operations} cases={out.cases} "
        f"5xx={server_errors} classes={dict(sorted(out.odd.items()))}"
    )
    assert out.count(SERVER_ERROR_CHECKS) == 0, "\n\n".join(out.messages)
    assert "error" not in out.failures, "\n\n".join(out.messages)
    assert server_errors == 0
    assert out.operations == out.documented
    assert set(out.odd) == {
        "edge_dates_or_cursors",
        "surrogates_or_nul",
        "deep_nesting",
        "huge_fields",
    }, out.odd
