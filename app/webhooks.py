"""Signed webhooks: a tenant's endpoints, the delivery outbox and the delivery loop.

- Endpoints (``webhooks``) are tenant administration. The signing secret is shown once, at
  creation, in the Standard Webhooks format (``whsec_`` + base64); stored, it is sealed with
  the webhook's own key (``app.keys``), destroyed when the webhook is deleted.
- ``enqueue`` writes one pending delivery per subscribed webhook in the caller's transaction
  (the outbox): an event is delivered if and only if what caused it was committed.
- ``deliver_due`` claims due deliveries in short transactions, sends each outside any
  transaction, signed (``webhook-id`` is the delivery's id, stable across retries), and records
  the outcome; failures are retried on a schedule spanning more than a day, then marked failed.
- Before every request, the first and each redirect's, the destination's host is resolved and
  refused when any of its addresses is not public (``webhook_allow_private`` lifts this).

Payloads hold ids, flags, scores, counts and timestamps, never personal data; ``last_error`` is
a short constant, never a response body.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import ipaddress
import json
import logging
import secrets
import socket
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import httpx
import standardwebhooks
from sqlalchemy import bindparam, delete, false, insert, select, update
from sqlmodel import Session, SQLModel, col

from app import audit
from app.auth import Principal
from app.db import Database
from app.errors import NotFound, Unprocessable
from app.keys import KeyRing, KeyUnavailable
from app.models import Webhook, WebhookDelivery, utcnow
from app.pagination import keyset_page
from app.tenancy import get_owned, owned

log = logging.getLogger(__name__)

TABLE = "webhooks"
MAX_URL_LENGTH = 2000
MAX_WEBHOOKS_PER_TENANT = 20
SECRET_BYTES = 32
# After attempt n fails, attempt n + 1 comes RETRY_DELAYS[n - 1] later: 8 attempts over about
# 27.6 hours, so a receiver that is down for a day still gets the event.
RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CLAIM_BATCH = 20
MAX_IN_FLIGHT = 32  # deliveries in flight at once per process, over all tenants
CLAIM_EVERY_S = 0.1  # while some are in flight, look for newly due ones this often
USER_AGENT = "notice-screening-webhooks/1"


class Event(StrEnum):
    BATCH_COMPLETED = "batch.completed"
    SCREENING_CREATED = "screening.created"
    SCREENING_CHANGED = "screening.changed"


class State(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


# The constant descriptions ``last_error`` may hold.
ERR_STATUS = "non-2xx response"
ERR_TIMEOUT = "timeout"
ERR_CONNECTION = "connection error"
ERR_REFUSED = "destination refused: not a public address"
ERR_SCHEME = "destination refused: not http or https"
ERR_DNS = "destination name not resolved"
ERR_REDIRECTS = "too many redirects"
ERR_REDIRECT_LOCATION = "redirect without a location"
ERR_SECRET = "signing secret unavailable"


class DeliveryOptions(Protocol):
    """What delivery needs from the settings (``app.settings.Settings`` has these fields)."""

    @property
    def webhook_allow_private(self) -> bool: ...

    @property
    def webhook_timeout_seconds(self) -> float: ...

    @property
    def webhook_poll_seconds(self) -> float: ...

    @property
    def webhook_tenant_concurrency(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Options:
    webhook_allow_private: bool = False
    webhook_timeout_seconds: float = 10
    webhook_poll_seconds: float = 2
    webhook_tenant_concurrency: int = 4


# --- destinations ------------------------------------------------------------------------------


class Refused(Exception):
    """A destination we do not send to; ``reason`` is one of the constants above."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def is_forbidden_address(ip: IPAddress) -> bool:
    """True for any address that is not plainly public: private, loopback, link-local,
    multicast, reserved, unspecified, shared (CGNAT) or otherwise not global, and IPv6 forms
    that embed such an IPv4 address (mapped, 6to4, NAT64)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and is_forbidden_address(embedded):
            return True
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, including the legacy IPv4 forms a resolver accepts
    (``2130706433``, ``0x7f.1``, ``127.1``); None for a name."""
    host = host.rstrip(".")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def _split(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or Refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused(ERR_SCHEME) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise Refused(ERR_SCHEME)
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


def check_destination(url: str, *, allow_private: bool) -> None:
    """Refuse a URL whose scheme is not http(s) or whose host resolves to any non-public
    address. Called before every request, redirects included."""
    _, host, port = _split(url)
    if allow_private:
        return
    literal = literal_address(host)
    if literal is not None:
        if is_forbidden_address(literal):
            raise Refused(ERR_REFUSED)
        return
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError, ValueError):
        raise Refused(ERR_DNS) from None
    if not addresses:
        raise Refused(ERR_DNS)
    if any(is_forbidden_address(address) for address in addresses):
        raise Refused(ERR_REFUSED)


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for ``host``."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def validate_url(url: str, *, allow_private: bool) -> str:
    """The URL a webhook may be created with, or a 422 naming the field (never the value)."""

    def invalid(msg: str) -> Unprocessable:
        return Unprocessable(
            "The webhook URL is not accepted.",
            extra={"errors": [{"loc": ["body", "url"], "msg": msg, "type": "url"}]},
        )

    if not url or len(url) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in url):
        raise invalid("Must be an absolute http or https URL without spaces")
    try:
        _, host, _ = _split(url)
    except Refused:
        raise invalid("Must be an absolute http or https URL") from None
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise invalid("Must not carry credentials")
    literal = literal_address(host)
    if literal is not None and not allow_private and is_forbidden_address(literal):
        raise invalid("Must not name a private, loopback, link-local or reserved address")
    return url


# --- endpoints ---------------------------------------------------------------------------------


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def create(
    session: Session,
    principal: Principal,
    keys: KeyRing,
    url: str,
    events: Iterable[str],
    *,
    allow_private: bool,
) -> tuple[Webhook, str]:
    """Create a webhook; returns it and its signing secret (the only time it is shown)."""
    try:
        wanted = sorted({Event(e).value for e in events})
    except ValueError:
        wanted = []
    if not wanted:
        raise Unprocessable(
            "Subscribe to at least one known event.",
            extra={"errors": [{"loc": ["body", "events"], "msg": "Unknown", "type": "events"}]},
        )
    validate_url(url, allow_private=allow_private)
    existing = len(session.exec(owned(Webhook, principal.tenant_id)).all())
    if existing >= MAX_WEBHOOKS_PER_TENANT:
        raise Unprocessable(f"A tenant has at most {MAX_WEBHOOKS_PER_TENANT} webhooks.")
    webhook_id = uuid.uuid4()
    secret = new_secret()
    key = keys.new_subject_key(session, principal.tenant_id, webhook_id, TABLE)
    row = Webhook(
        id=webhook_id,
        tenant_id=principal.tenant_id,
        url=url,
        events=wanted,
        secret_sealed=key.seal("secret", secret.encode()),
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    audit.record(session, principal, "webhook.created", webhook_id, object_type="webhook")
    return row, secret


def list_all(session: Session, principal: Principal) -> list[Webhook]:
    """The tenant's webhooks, oldest first (at most MAX_WEBHOOKS_PER_TENANT)."""
    query = owned(Webhook, principal.tenant_id).order_by(col(Webhook.created_at), col(Webhook.id))
    return list(session.exec(query).all())


def get(session: Session, principal: Principal, webhook_id: uuid.UUID) -> Webhook:
    return get_owned(session, Webhook, webhook_id, principal.tenant_id)


def delete_webhook(session: Session, principal: Principal, webhook_id: uuid.UUID) -> None:
    """Delete the webhook, its deliveries and its secret's key."""
    row = get_owned(session, Webhook, webhook_id, principal.tenant_id)
    KeyRing.shred(session, principal.tenant_id, [row.id])
    session.connection().execute(delete(_DELIVERIES).where(_DELIVERIES.c.webhook_id == row.id))
    session.delete(row)
    audit.record(session, principal, "webhook.deleted", webhook_id, object_type="webhook")


def list_deliveries(
    session: Session,
    principal: Principal,
    webhook_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[WebhookDelivery], str | None]:
    """The webhook's deliveries, newest first."""
    webhook = get_owned(session, Webhook, webhook_id, principal.tenant_id)
    query = owned(WebhookDelivery, principal.tenant_id).where(
        WebhookDelivery.webhook_id == webhook.id
    )
    return keyset_page(
        session,
        query,
        WebhookDelivery.created_at,
        WebhookDelivery.id,
        limit=limit,
        cursor=cursor,
    )


def resend(
    session: Session, principal: Principal, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    """A new pending delivery with the same event and payload (and so a new webhook-id)."""
    webhook = get_owned(session, Webhook, webhook_id, principal.tenant_id)
    original = session.exec(
        owned(WebhookDelivery, principal.tenant_id).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook.id
        )
    ).first()
    if original is None:
        raise NotFound()
    now = utcnow()
    row = WebhookDelivery(
        webhook_id=webhook.id,
        tenant_id=principal.tenant_id,
        event=original.event,
        payload=original.payload,
        state=State.PENDING.value,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    session.flush()
    audit.record(session, principal, "webhook.resent", row.id, object_type="webhook_delivery")
    return row


# --- the outbox --------------------------------------------------------------------------------

_WEBHOOKS = SQLModel.metadata.tables["webhooks"]
_DELIVERIES = SQLModel.metadata.tables["webhook_deliveries"]
_INSERT_DELIVERY = insert(_DELIVERIES)
_SUBSCRIBERS = select(_WEBHOOKS.c.id, _WEBHOOKS.c.events).where(
    _WEBHOOKS.c.tenant_id == bindparam("tenant_id"), _WEBHOOKS.c.disabled == false()
)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def enqueue(session: Session, tenant_id: uuid.UUID, event: str, payload: dict[str, Any]) -> int:
    """One pending delivery for each of the tenant's enabled webhooks subscribed to ``event``,
    in the caller's transaction. ``payload`` must hold no personal data. Returns how many."""
    kind = Event(event).value
    targets = [
        webhook_id
        for webhook_id, events in session.connection().execute(
            _SUBSCRIBERS, {"tenant_id": tenant_id}
        )
        if kind in (events or ())
    ]
    if not targets:
        return 0
    now = utcnow()
    body = json.dumps(
        {"type": kind, "timestamp": now.isoformat(), "data": payload},
        separators=(",", ":"),
        default=_json_default,
    )
    session.connection().execute(
        _INSERT_DELIVERY,
        [
            {
                "id": uuid.uuid4(),
                "webhook_id": webhook_id,
                "tenant_id": tenant_id,
                "event": kind,
                "payload": body,
                "state": State.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for webhook_id in targets
        ],
    )
    return len(targets)


def screening_created(
    session: Session,
    tenant_id: uuid.UUID,
    screening_id: uuid.UUID,
    flag: str,
    score: int,
    created_at: datetime,
) -> int:
    """``screening.created``: the screening's id, flag, score and time; nothing about the
    person."""
    payload = {
        "screening_id": screening_id,
        "flag": flag,
        "score": score,
        "created_at": created_at,
    }
    return enqueue(session, tenant_id, Event.SCREENING_CREATED, payload)


# --- delivery ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: uuid.UUID
    tenant_id: uuid.UUID
    url: str
    secret: str
    payload: str
    attempts: int  # including this one


@dataclass(frozen=True, slots=True)
class _Outcome:
    ok: bool
    status: int | None
    error: str | None


def _lease(options: DeliveryOptions) -> timedelta:
    """How long a claimed delivery is hidden from other claimers: longer than any send takes,
    so a process that dies mid-send leaves it to be retried, never lost."""
    return timedelta(seconds=options.webhook_timeout_seconds * (MAX_REDIRECTS + 1) * 4 + 60)


def _claim(
    database: Database, keys: KeyRing, now: datetime, lease: timedelta, limit: int
) -> list[_Claimed]:
    """Take up to ``limit`` due deliveries in one short transaction: count the attempt and
    push their next attempt past the lease. Replicas take disjoint rows (PostgreSQL)."""
    claimed: list[_Claimed] = []
    with database.session() as session:
        conn = session.connection()
        rows = conn.execute(
            select(
                _DELIVERIES.c.id,
                _DELIVERIES.c.tenant_id,
                _DELIVERIES.c.webhook_id,
                _DELIVERIES.c.payload,
                _DELIVERIES.c.attempts,
                _WEBHOOKS.c.url,
                _WEBHOOKS.c.secret_sealed,
            )
            .select_from(_DELIVERIES.join(_WEBHOOKS, _WEBHOOKS.c.id == _DELIVERIES.c.webhook_id))
            .where(
                _DELIVERIES.c.state == State.PENDING.value,
                _DELIVERIES.c.next_attempt_at <= now,
                _WEBHOOKS.c.disabled == false(),
            )
            .order_by(_DELIVERIES.c.next_attempt_at, _DELIVERIES.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=_DELIVERIES)
        ).all()
        for delivery_id, tenant_id, webhook_id, payload, attempts, url, sealed in rows:
            try:
                secret = (
                    keys.subject_key(session, tenant_id, webhook_id, TABLE)
                    .open("secret", sealed)
                    .decode()
                )
            except KeyUnavailable:
                conn.execute(
                    update(_DELIVERIES)
                    .where(_DELIVERIES.c.id == delivery_id)
                    .values(state=State.FAILED.value, last_error=ERR_SECRET, last_status=None)
                )
                continue
            conn.execute(
                update(_DELIVERIES)
                .where(_DELIVERIES.c.id == delivery_id)
                .values(attempts=attempts + 1, next_attempt_at=now + lease)
            )
            claimed.append(_Claimed(delivery_id, tenant_id, url, secret, payload, attempts + 1))
    return claimed


async def _send(
    http: httpx.AsyncClient, item: _Claimed, allow_private: bool, deadline: float
) -> _Outcome:
    """One attempt within ``deadline`` seconds in all (connect, request, response headers and
    every redirect): a receiver that trickles its answer a byte at a time cannot hold it
    longer, whatever the per-read timeout."""
    try:
        async with asyncio.timeout(deadline):
            return await _attempt(http, item, allow_private)
    except TimeoutError:
        return _Outcome(False, None, ERR_TIMEOUT)


async def _attempt(http: httpx.AsyncClient, item: _Claimed, allow_private: bool) -> _Outcome:
    """POST the signed payload, following at most MAX_REDIRECTS redirects by hand, each
    destination checked before it is contacted. Response bodies are never read."""
    signed_at = utcnow()
    body = item.payload.encode()
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": str(item.id),
        "webhook-timestamp": str(int(signed_at.timestamp())),
        "webhook-signature": standardwebhooks.Webhook(item.secret).sign(
            str(item.id), signed_at, item.payload
        ),
    }
    url = item.url
    status: int | None = None
    for _hop in range(MAX_REDIRECTS + 1):
        try:
            # The name is resolved in a thread: the loop keeps the other deliveries going.
            await asyncio.to_thread(check_destination, url, allow_private=allow_private)
        except Refused as exc:
            return _Outcome(False, status, exc.reason)
        try:
            async with http.stream("POST", url, content=body, headers=headers) as response:
                status = response.status_code
                location = response.headers.get("location")
        except httpx.TimeoutException:
            return _Outcome(False, None, ERR_TIMEOUT)
        except httpx.HTTPError:
            return _Outcome(False, None, ERR_CONNECTION)
        if status in REDIRECT_STATUSES:
            if not location:
                return _Outcome(False, status, ERR_REDIRECT_LOCATION)
            url = urljoin(url, location)
            continue
        if 200 <= status < 300:
            return _Outcome(True, status, None)
        return _Outcome(False, status, ERR_STATUS)
    return _Outcome(False, status, ERR_REDIRECTS)


def _record(database: Database, item: _Claimed, outcome: _Outcome, at: datetime) -> None:
    """Store the outcome: delivered, another attempt on the schedule, or failed."""
    values: dict[str, Any] = {"last_status": outcome.status, "last_error": outcome.error}
    if outcome.ok:
        values |= {"state": State.DELIVERED.value, "delivered_at": at}
    elif item.attempts >= MAX_ATTEMPTS:
        values |= {"state": State.FAILED.value}
    else:
        values |= {"next_attempt_at": at + RETRY_DELAYS[item.attempts - 1]}
    with database.session() as session:
        # Guarded by the attempt count: a claimer that took over after the lease wins.
        session.connection().execute(
            update(_DELIVERIES)
            .where(
                _DELIVERIES.c.id == item.id,
                _DELIVERIES.c.attempts == item.attempts,
                _DELIVERIES.c.state == State.PENDING.value,
            )
            .values(**values)
        )


def deliver_due(
    database: Database,
    keys: KeyRing,
    options: DeliveryOptions,
    *,
    now: datetime | None = None,
    limit: int = 500,
    stop: threading.Event | None = None,
) -> int:
    """Send deliveries due at ``now`` (default: the current time), at most ``limit``; returns
    how many were attempted. No transaction is open while a request is in flight.

    Deliveries run concurrently (on an event loop of this thread), at most
    ``webhook_tenant_concurrency`` per tenant and MAX_IN_FLIGHT in all, each attempt within
    ``webhook_timeout_seconds`` in total; while some are in flight, newly due ones are claimed
    every CLAIM_EVERY_S, so one tenant's slow receiver delays no other tenant's deliveries."""
    work = _deliver_due(database, keys, options, now, limit, stop)
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # the normal case: a worker thread without a loop
        return asyncio.run(work)
    # Called from a coroutine (tests): the deliveries get a loop of their own, in a thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


async def _deliver_due(
    database: Database,
    keys: KeyRing,
    options: DeliveryOptions,
    now: datetime | None,
    limit: int,
    stop: threading.Event | None,
) -> int:
    clock = now or utcnow()
    lease = _lease(options)
    deadline = options.webhook_timeout_seconds
    per_tenant = max(1, options.webhook_tenant_concurrency)
    tenant_slots: dict[uuid.UUID, asyncio.Semaphore] = {}
    in_flight: set[asyncio.Task[None]] = set()
    attempted = 0

    async def deliver(http: httpx.AsyncClient, item: _Claimed) -> None:
        slot = tenant_slots.setdefault(item.tenant_id, asyncio.Semaphore(per_tenant))
        async with slot:
            outcome = await _send(http, item, options.webhook_allow_private, deadline)
        _record(database, item, outcome, now or utcnow())
        if outcome.ok:
            log.info("webhook delivered", extra={"object_id": str(item.id)})
        else:
            log.warning(
                "webhook delivery failed",
                extra={
                    "object_id": str(item.id),
                    "status": outcome.status,
                    "error_type": outcome.error,
                },
            )

    timeout = httpx.Timeout(deadline)
    # trust_env=False: no proxy from the environment, whose address we would not check.
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as http:
        while True:
            stopping = stop is not None and stop.is_set()
            room = min(CLAIM_BATCH, limit - attempted, MAX_IN_FLIGHT - len(in_flight))
            batch = [] if stopping or room <= 0 else _claim(database, keys, clock, lease, room)
            for item in batch:
                in_flight.add(asyncio.create_task(deliver(http, item)))
                attempted += 1
            if not in_flight:
                if not batch:
                    break
                continue
            done, pending = await asyncio.wait(in_flight, timeout=CLAIM_EVERY_S)
            for task in done:
                task.result()  # a database error while recording is raised, as before
            in_flight = set(pending)
    return attempted
