"""The authorization matrix: every route x every scope x two tenants.

``MATRIX`` is the reviewed contract: for each (method, path template) the application serves,
the one scope it requires (or ``PUBLIC``), what its path id names, and the status the right
caller gets. It is compared with the application's own route table, so a route added without
an entry (or an entry whose route is gone) fails; then every protected route is called with a
token holding each single scope, with no token and with a garbage token, and every route whose
id names a tenant-owned object is called by the other tenant with the real id and with a
missing one.

``scope_checks`` counts every authorization request of the matrix test: one per (protected
route, scope), two per protected route without a valid token, two per public route.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

from app.auth import ALL_SCOPES, OPERATOR_ONLY, Scope
from app.db import Database
from app.kb.loader import KnowledgeBase, read_files
from tests.conftest import Credentials, make_client, make_operator, token_for

pytestmark = pytest.mark.anyio

PUBLIC = "public"
MOUNT = "MOUNT"  # the "method" of a mounted sub-application (static files)
GARBAGE = {"Authorization": "Bearer not-a-token"}
SCREENING_BODY: dict[str, Any] = {
    "subject": {"occupation": "journalist", "nationalities": ["RU"]},
    "notice": {"type": "red_notice", "issuing_country": "RU", "charges": "fraud"},
}
WEBHOOK_BODY: dict[str, Any] = {"url": "https://ngo.example/hooks", "events": ["batch.completed"]}
# Objects whose ids belong to one tenant; the other kinds (knowledge) are shared by all. A
# delivery's id is "webhook id/delivery id", one part per path parameter.
TENANT_OWNED = frozenset({"screening", "client", "batch", "webhook", "delivery"})


@dataclass(frozen=True)
class Entry:
    scope: str  # a Scope value, or PUBLIC
    obj: str | None = None  # what the path id names: a key of the object makers below
    ok: int = 200  # the status for the right scope (protected) or for anyone (public)
    probe: str | None = None  # the URL to call for a public route whose path is a prefix
    json: Any = field(default=None, hash=False)
    mutates: bool = False  # the allowed call changes the object: it gets a fresh one


K = "/v1/knowledge"
MATRIX: dict[tuple[str, str], Entry] = {
    # Public: documentation, operations and the token endpoint itself.
    ("GET", "/openapi.json"): Entry(PUBLIC),
    ("HEAD", "/openapi.json"): Entry(PUBLIC),
    ("GET", "/docs"): Entry(PUBLIC),
    ("GET", "/docs/oauth2-redirect"): Entry(PUBLIC),
    (MOUNT, "/static-offline-docs"): Entry(PUBLIC, probe="/static-offline-docs/swagger-ui.css"),
    ("GET", "/healthz"): Entry(PUBLIC),
    ("GET", "/readyz"): Entry(PUBLIC),
    # Public by design (see app/api/health.py): request counts and latencies per route template
    # and status, for every tenant together.
    ("GET", "/metrics"): Entry(PUBLIC),
    ("POST", "/v1/auth/token"): Entry(PUBLIC, ok=400),  # no credentials: invalid_request
    # Screenings.
    ("POST", "/v1/screenings"): Entry(Scope.SCREENINGS_WRITE, ok=201, json=SCREENING_BODY),
    ("GET", "/v1/screenings"): Entry(Scope.SCREENINGS_READ),
    ("GET", "/v1/screenings/{screening_id}"): Entry(Scope.SCREENINGS_READ, obj="screening"),
    ("GET", "/v1/screenings/{screening_id}/report"): Entry(Scope.SCREENINGS_READ, obj="screening"),
    ("DELETE", "/v1/screenings/{screening_id}"): Entry(
        Scope.SCREENINGS_WRITE, obj="screening", ok=204
    ),
    ("POST", "/v1/screenings/{screening_id}/rescreen"): Entry(
        Scope.SCREENINGS_WRITE, obj="screening"
    ),
    # The knowledge base, shared by all tenants.
    ("GET", K): Entry(Scope.KNOWLEDGE_READ),
    ("GET", K + "/sources"): Entry(Scope.KNOWLEDGE_READ),
    ("GET", K + "/sources/{source_id}"): Entry(Scope.KNOWLEDGE_READ, obj="source"),
    ("GET", K + "/countries"): Entry(Scope.KNOWLEDGE_READ),
    ("GET", K + "/countries/{iso2}"): Entry(Scope.KNOWLEDGE_READ, obj="country"),
    ("GET", K + "/patterns"): Entry(Scope.KNOWLEDGE_READ),
    ("GET", K + "/patterns/{code}"): Entry(Scope.KNOWLEDGE_READ, obj="pattern"),
    ("GET", K + "/provisions"): Entry(Scope.KNOWLEDGE_READ),
    ("GET", K + "/provisions/{provision_id}"): Entry(Scope.KNOWLEDGE_READ, obj="provision"),
    ("GET", K + "/cases"): Entry(Scope.KNOWLEDGE_READ),
    ("GET", K + "/cases/{case_id}"): Entry(Scope.KNOWLEDGE_READ, obj="case"),
    # Releases: an empty upload passes authorization and is refused as invalid.
    ("POST", K + "/releases"): Entry(Scope.KNOWLEDGE_ADMIN, ok=422, json={"files": {}}),
    ("GET", K + "/releases"): Entry(Scope.KNOWLEDGE_READ),
    ("GET", K + "/releases/{version}"): Entry(Scope.KNOWLEDGE_READ, obj="release"),
    ("GET", K + "/releases/{version}/bundle"): Entry(Scope.KNOWLEDGE_READ, obj="release"),
    ("POST", K + "/releases/{version}/activate"): Entry(Scope.KNOWLEDGE_ADMIN, obj="release"),
    # The tenant's own administration.
    ("GET", "/v1/clients"): Entry(Scope.TENANTS_ADMIN),
    ("GET", "/v1/clients/{id}"): Entry(Scope.TENANTS_ADMIN, obj="client"),
    ("DELETE", "/v1/clients/{id}"): Entry(Scope.TENANTS_ADMIN, obj="client", ok=204),
    ("GET", "/v1/audit"): Entry(Scope.TENANTS_ADMIN),
    ("GET", "/v1/tenant"): Entry(Scope.TENANTS_ADMIN),
    # Batches.
    ("POST", "/v1/batches"): Entry(Scope.BATCHES_WRITE, ok=202, json=[SCREENING_BODY]),
    ("GET", "/v1/batches/template.csv"): Entry(Scope.BATCHES_WRITE),
    ("GET", "/v1/batches/{batch_id}"): Entry(Scope.BATCHES_WRITE, obj="batch"),
    ("GET", "/v1/batches/{batch_id}/results"): Entry(Scope.BATCHES_WRITE, obj="batch"),
    ("POST", "/v1/batches/{batch_id}/cancel"): Entry(
        Scope.BATCHES_WRITE, obj="batch", mutates=True
    ),
    ("PUT", "/v1/tenant"): Entry(Scope.TENANTS_ADMIN, json={"retention_days": 365}),
    # Webhooks (tenant administration).
    ("POST", "/v1/webhooks"): Entry(Scope.TENANTS_ADMIN, ok=201, json=WEBHOOK_BODY),
    ("GET", "/v1/webhooks"): Entry(Scope.TENANTS_ADMIN),
    ("GET", "/v1/webhooks/{webhook_id}"): Entry(Scope.TENANTS_ADMIN, obj="webhook"),
    ("DELETE", "/v1/webhooks/{webhook_id}"): Entry(Scope.TENANTS_ADMIN, obj="webhook", ok=204),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): Entry(Scope.TENANTS_ADMIN, obj="webhook"),
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/resend"): Entry(
        Scope.TENANTS_ADMIN, obj="delivery", ok=202
    ),
}


def served_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) for everything the application answers, mounts included."""
    served: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, Mount):
            served.add((MOUNT, route.path))
            continue
        methods = context.methods
        path = context.path
        assert methods, f"a route the matrix cannot name: {route!r}"
        assert path, f"a route the matrix cannot name: {route!r}"
        served |= {(m, path) for m in methods}
    return served


def fill(template: str, object_id: str) -> str:
    """The template with its path parameters replaced by the parts of ``object_id``."""
    params = re.findall(r"\{[^}]+\}", template)
    if not params:
        return template
    parts = object_id.split("/")
    assert len(parts) == len(params), f"{template}: {len(params)} ids, got {object_id!r}"
    for param, part in zip(params, parts, strict=True):
        template = template.replace(param, part)
    return template


def each(form: Callable[[str], str], object_id: str) -> str:
    """``form`` applied to every part of a (composite) id."""
    return "/".join(form(part) for part in object_id.split("/"))


def missing_id(object_id: str) -> str:
    """An id of the same shape that names nothing."""
    return each(lambda _: str(uuid.uuid4()), object_id)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Objects:
    """Makes real objects of one tenant and remembers one shared id per kind."""

    client: httpx.AsyncClient
    database: Database
    creds: Credentials
    headers: dict[str, str]
    kb: KnowledgeBase
    operator: dict[str, str]  # releases are an operator's to upload
    shared: dict[str, str] = field(default_factory=dict)

    async def make(self, kind: str) -> str:
        makers: dict[str, Callable[[], Awaitable[str]]] = {
            "screening": self._screening,
            "client": self._client,
            "webhook": self._webhook,
            "delivery": self._delivery,
            "batch": self._batch,
            "release": self._release,
        }
        kb_tables: dict[str, dict[str, Any]] = {
            "source": self.kb.sources,
            "country": self.kb.countries,
            "pattern": self.kb.patterns,
            "provision": self.kb.provisions,
            "case": self.kb.cases,
        }
        if kind in kb_tables:
            return sorted(kb_tables[kind])[0]
        assert kind in makers, f"no way to make a {kind!r}: add a maker for the matrix"
        return await makers[kind]()

    async def get(self, kind: str) -> str:
        if kind not in self.shared:
            self.shared[kind] = await self.make(kind)
        return self.shared[kind]

    async def _screening(self) -> str:
        r = await self.client.post("/v1/screenings", json=SCREENING_BODY, headers=self.headers)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def _release(self) -> str:
        """The built-in release, uploaded (shared by all tenants, like the knowledge base)."""
        r = await self.client.post(
            "/v1/knowledge/releases", json={"files": read_files()}, headers=self.operator
        )
        assert r.status_code in (200, 201), r.text
        return str(r.json()["version"])

    async def _batch(self) -> str:
        r = await self.client.post("/v1/batches", json=[SCREENING_BODY], headers=self.headers)
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    async def _client(self) -> str:
        made = make_client(self.database, self.creds.tenant)
        listing = (await self.client.get("/v1/clients", headers=self.headers)).json()["items"]
        return next(str(c["id"]) for c in listing if c["client_id"] == made.client_id)

    async def _webhook(self) -> str:
        r = await self.client.post("/v1/webhooks", json=WEBHOOK_BODY, headers=self.headers)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def _delivery(self) -> str:
        """A new webhook's first delivery: the webhook listens for new screenings."""
        body = {**WEBHOOK_BODY, "events": ["screening.created"]}
        r = await self.client.post("/v1/webhooks", json=body, headers=self.headers)
        assert r.status_code == 201, r.text
        webhook_id = str(r.json()["id"])
        await self._screening()
        r = await self.client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=self.headers)
        assert r.status_code == 200, r.text
        return f"{webhook_id}/{r.json()['items'][-1]['id']}"


# Kinds without a GET of their own are read through a list.
READ_ROUTES = {"delivery": "/v1/webhooks/{webhook_id}/deliveries"}


def read_route(kind: str) -> str:
    """The GET template that reads an object of ``kind``."""
    if kind in READ_ROUTES:
        return READ_ROUTES[kind]
    return next(p for (m, p), e in MATRIX.items() if m == "GET" and e.obj == kind)


def read_url(kind: str, object_id: str) -> str:
    template = read_route(kind)
    n = len(re.findall(r"\{[^}]+\}", template))
    return fill(template, "/".join(object_id.split("/")[:n]))


def view(kind: str, object_id: str, body: Any) -> Any:
    """The part of a read's body that is the object (a delivery: its entry in the list)."""
    if kind in READ_ROUTES:
        return [item for item in body["items"] if item["id"] == object_id.split("/")[-1]]
    return body


def documented_scopes(operation: dict[str, Any]) -> list[str]:
    return sorted({s for req in operation.get("security", []) for v in req.values() for s in v})


async def test_every_route_is_classified_and_every_scope_is_enforced(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    tenant_a: Credentials,
    kb: KnowledgeBase,
) -> None:
    served = served_routes(app)
    unclassified = sorted(served - MATRIX.keys())
    stale = sorted(MATRIX.keys() - served)
    mismatches: list[tuple[str, str, str, object]] = []

    # The OpenAPI document must declare the same scope the route enforces.
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            entry = MATRIX.get((method.upper(), path))
            if entry is None:
                continue  # reported as unclassified
            expected = [] if entry.scope == PUBLIC else [entry.scope]
            if documented_scopes(operation) != expected:
                mismatches.append((method, path, "documented", documented_scopes(operation)))

    full = bearer(await token_for(client, tenant_a))
    ops = make_operator(database)
    objects = Objects(client, database, tenant_a, full, kb, bearer(await token_for(client, ops)))
    # One token per scope: knowledge:admin only an operator can hold.
    single = {
        s: bearer(await token_for(client, ops if s in OPERATOR_ONLY else tenant_a, scope=s))
        for s in ALL_SCOPES
    }
    snapshots: dict[str, Any] = {}
    for kind in sorted({e.obj for e in MATRIX.values() if e.obj in TENANT_OWNED}):
        object_id = await objects.get(kind)
        r = await client.get(read_url(kind, object_id), headers=full)
        snapshots[kind] = view(kind, object_id, r.json())

    checks = 0
    for (method, path), entry in sorted(MATRIX.items()):
        if (method, path) not in served:
            continue  # reported as stale
        if entry.scope == PUBLIC:
            verb = "GET" if method == MOUNT else method
            for headers in ({}, GARBAGE):
                r = await client.request(verb, entry.probe or path, headers=headers)
                checks += 1
                if r.status_code != entry.ok:
                    mismatches.append((method, path, f"public {headers}", r.status_code))
            continue
        for scope in ALL_SCOPES:
            allowed = scope == entry.scope
            object_id = ""
            if entry.obj is not None:
                # The allowed DELETE erases a fresh object; every other call uses the shared one.
                destructive = allowed and (method == "DELETE" or entry.mutates)
                object_id = await (objects.make if destructive else objects.get)(entry.obj)
            r = await client.request(
                method, fill(path, object_id), headers=single[scope], json=entry.json
            )
            checks += 1
            expected = entry.ok if allowed else 403
            if r.status_code != expected:
                mismatches.append((method, path, scope, r.status_code))
            elif not allowed and r.headers["content-type"] != "application/problem+json":
                mismatches.append((method, path, scope, r.headers["content-type"]))
        url = fill(path, await objects.get(entry.obj) if entry.obj else "")
        for headers in ({}, GARBAGE):
            r = await client.request(method, url, headers=headers, json=entry.json)
            checks += 1
            if r.status_code != 401:
                mismatches.append((method, path, f"unauthenticated {headers}", r.status_code))

    # The refused calls changed nothing: the shared objects read as before.
    for kind, before in snapshots.items():
        object_id = objects.shared[kind]
        r = await client.get(read_url(kind, object_id), headers=full)
        if r.status_code != 200 or view(kind, object_id, r.json()) != before:
            mismatches.append(("GET", read_route(kind), "changed by refused calls", r.status_code))

    print(
        f"SECMETRIC authz_matrix routes={len(served)} scope_checks={checks} "
        f"mismatches={len(mismatches)} unclassified_routes={len(unclassified)}"
    )
    assert unclassified == [], f"routes without a MATRIX entry: {unclassified}"
    assert stale == [], f"MATRIX entries without a route: {stale}"
    assert mismatches == []
    protected = sum(e.scope != PUBLIC for e in MATRIX.values())
    assert checks == protected * (len(ALL_SCOPES) + 2) + 2 * (len(MATRIX) - protected)

    # Control: a route added without an entry is caught.
    app.add_api_route("/v1/unlisted", lambda: None, methods=["GET"])
    assert sorted(served_routes(app) - MATRIX.keys()) == [("GET", "/v1/unlisted")]


# Headers that differ between any two requests: the date, the request id and the caller's own
# remaining rate-limit budget (which says nothing about the object asked for).
VOLATILE = {"date", "x-request-id", "ratelimit-remaining", "ratelimit-reset"}


def _comparable(r: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = sorted((k, v) for k, v in r.headers.items() if k not in VOLATILE)
    return r.status_code, r.content, headers


ID_FORMS: dict[str, Callable[[str], str]] = {
    "canonical": str,
    "upper": str.upper,
    "hex": lambda i: uuid.UUID(i).hex,
}


async def test_other_tenants_ids_answer_exactly_like_missing_ones(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    tenant_a: Credentials,
    tenant_b: Credentials,
    kb: KnowledgeBase,
) -> None:
    served = served_routes(app)
    a = bearer(await token_for(client, tenant_a))
    b = bearer(await token_for(client, tenant_b))
    objects = Objects(client, database, tenant_a, a, kb, operator={})  # no releases here
    routes = sorted(
        (m, p, e) for (m, p), e in MATRIX.items() if e.obj in TENANT_OWNED and (m, p) in served
    )
    kinds = sorted({e.obj for _, _, e in routes if e.obj})
    snapshots = {}
    for kind in kinds:
        object_id = await objects.get(kind)
        r = await client.get(read_url(kind, object_id), headers=a)
        assert r.status_code == 200, (kind, r.text)
        snapshots[kind] = view(kind, object_id, r.json())
        assert snapshots[kind], (kind, "the object is not in what reads it")
        # Control: the comparison tells an existing object from a missing one.
        missing = await client.get(read_url(kind, missing_id(object_id)), headers=a)
        assert _comparable(r) != _comparable(missing)

    requests = leaks = 0
    differences: list[tuple[str, str, str, int, int]] = []
    for method, path, entry in routes:
        assert entry.obj is not None
        theirs_id = objects.shared[entry.obj]
        for form_name, form in ID_FORMS.items():
            # One request id for both calls, so the bodies can be compared byte for byte.
            headers = {**b, "X-Request-ID": uuid.uuid4().hex}
            theirs = await client.request(
                method, fill(path, each(form, theirs_id)), headers=headers, json=entry.json
            )
            missing = await client.request(
                method,
                fill(path, each(form, missing_id(theirs_id))),
                headers=headers,
                json=entry.json,
            )
            requests += 2
            if theirs.status_code < 400 or any(
                f(part) in theirs.text for f in ID_FORMS.values() for part in theirs_id.split("/")
            ):
                leaks += 1
            if _comparable(theirs) != _comparable(missing):
                differences.append(
                    (method, path, form_name, theirs.status_code, missing.status_code)
                )

    # Tenant A's objects are untouched, including by the other tenant's DELETE calls.
    unchanged = 0
    for kind, before in snapshots.items():
        object_id = objects.shared[kind]
        r = await client.get(read_url(kind, object_id), headers=a)
        unchanged += r.status_code == 200 and view(kind, object_id, r.json()) == before

    print(
        f"SECMETRIC cross_tenant routes_with_id={len(routes)} requests={requests} "
        f"leaks={leaks} distinguishable_from_missing={len(differences)}"
    )
    assert {e.obj for _, _, e in routes} == TENANT_OWNED  # every owned kind was exercised
    assert any(m == "DELETE" for m, _, _ in routes)
    assert requests == 2 * len(ID_FORMS) * len(routes)
    assert leaks == 0
    assert differences == []
    assert unchanged == len(snapshots) == len(kinds)
