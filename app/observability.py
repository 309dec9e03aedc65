"""Structured logs, request ids, access logs, metrics, security headers and the body limit.

Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request). Logs and metrics carry
route templates such as ``/v1/screenings/{screening_id}``, never raw paths, query strings,
headers or bodies, so no personal data can reach them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import problem

REQUEST_ID_HEADER = "x-request-id"
# Only hex ids (UUIDs, trace ids) are echoed: a free-form id could carry a name into the logs.
_SAFE_REQUEST_ID = re.compile(r"[0-9a-fA-F-]{16,64}")
_LOG_FIELDS = (
    "request_id",
    "method",
    "route",
    "status",
    "duration_ms",
    "client_id",
    "error_type",
    "where",
    "object_id",  # a UUID, never a name
    "count",
)

_FORMATTED_LOGGERS = ("app", "alembic", "uvicorn.error")

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
# Swagger UI runs one inline bootstrap script; everything else comes from this origin.
DOCS_CSP = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; frame-ancestors 'none'"
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line with an allow-list of fields; nothing else is emitted."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            # Our messages are constant strings with data in allow-listed fields; libraries we
            # trust to log no request data are formatted, others show only their template.
            "msg": record.getMessage()
            if record.name.startswith(_FORMATTED_LOGGERS)
            else str(record.msg)[:300],
        }
        for field in _LOG_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own access log prints raw paths and query strings; ours prints route templates.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by method and route template",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )


# Label values for what the client chose: anything else becomes OTHER, so invented methods
# and paths cannot create metric series or log values (5,000 methods once made 90,000 series).
OTHER = "other"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope) -> str:
    """The matched route's template (set by the router), never the raw path; ``other`` when
    no route matched."""
    return str(getattr(scope.get("route"), "path", None) or OTHER)


def method_label(scope: Scope) -> str:
    """The request's method when it is a standard one, else ``other``."""
    method = scope.get("method", "")
    return method if method in KNOWN_METHODS else OTHER


class RequestContextMiddleware:
    """Request id, security headers, access log and metrics for every HTTP request."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.log = logging.getLogger("app.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = incoming if _SAFE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        path = scope["path"]
        docs = path == "/docs" or path.startswith("/static-offline-docs")
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                # A route that chose its caching (ETag'd knowledge, static docs) keeps it.
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                # A route that sets its own policy (the HTML report's inline styles) keeps it:
                # a second header would be enforced too and block what the first allows.
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", DOCS_CSP if docs else API_CSP))
                # The request's remaining budget (set by the limiter); a 429 carries its own.
                for name, value in scope.get("state", {}).get("ratelimit", {}).items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = route_template(scope)
            method = method_label(scope)
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            principal = scope.get("state", {}).get("principal")
            self.log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "client_id": getattr(principal, "client_id", None),
                },
            )


class _BodyTooLarge(StarletteHTTPException):
    """An HTTPException, so FastAPI's body parsing passes it on instead of answering 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body exceeds the limit of {limit} bytes.")


class BodyLimitMiddleware:
    """413 problem+json for bodies over the limit, whether Content-Length says so or the
    chunks add up to it; the application never sees the excess."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, larger: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger or {}  # exact path -> its own limit (batch uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope["path"], self.max_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = False
            if too_big:
                await self._reject(scope, receive, send, limit)
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await self._reject(scope, receive, send, limit)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        detail = f"The request body exceeds the limit of {limit} bytes."
        response = problem(413, detail=detail, headers={"connection": "close"})
        await response(scope, receive, send)
