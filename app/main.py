"""``create_app(settings)``: the FastAPI application, assembled from its parts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from app import __version__, batches, errors, migrate, retention, webhooks
from app.api import audit as audit_api
from app.api import auth as auth_api
from app.api import batches as batches_api
from app.api import clients as clients_api
from app.api import health as health_api
from app.api import knowledge as knowledge_api
from app.api import screenings as screenings_api
from app.api import tenant as tenant_api
from app.api import webhooks as webhooks_api
from app.auth import TokenService
from app.db import Database, create_database
from app.kb.loader import KnowledgeBase
from app.kb.loader import load as load_kb
from app.keys import KeyRing
from app.observability import BodyLimitMiddleware, Metrics, RequestContextMiddleware
from app.ratelimit import Limits, RateLimiter, parse_limit
from app.settings import Settings

log = logging.getLogger(__name__)

DESCRIPTION = """
Screens a person and/or an INTERPOL Red Notice or diffusion against a curated, versioned
knowledge base of documented abuse patterns, and returns a scored flag with the reasons, the
legal grounds to challenge the notice, and citations to public sources.

**This service is a screening aid, not legal advice.**

Authenticate with OAuth2 client credentials: press **Authorize**, enter your client id and
secret (`make run` prints the local admin's once), and tick the scopes you need. Errors are
RFC 9457 `application/problem+json` and never echo submitted values.
"""

TAGS = [
    {"name": "screenings", "description": "Screen a person and a notice; read and erase results."},
    {
        "name": "knowledge",
        "description": "The knowledge base: sources, countries, patterns, "
        "legal provisions and documented cases, with its version and content hash.",
    },
    {"name": "auth", "description": "OAuth2 client-credentials tokens."},
    {"name": "tenants", "description": "Your tenant's API clients."},
    {"name": "operations", "description": "Health, readiness and metrics."},
]


async def _purge_periodically(db: Database, interval: float) -> None:
    """Purge expired screenings now and then every ``interval`` seconds, in a thread: each
    batch is a short write transaction, so requests keep being served."""
    while True:
        try:
            purged = await asyncio.to_thread(retention.purge, db)
            if purged:
                log.info("retention purge", extra={"count": sum(purged.values())})
        except Exception as exc:  # logged and retried next round; never kills the server
            log.error("retention purge failed", extra={"error_type": type(exc).__name__})
        await asyncio.sleep(interval)


async def _deliver_webhooks_periodically(
    db: Database, keys: KeyRing, settings: Settings, stop: threading.Event
) -> None:
    """Send due webhook deliveries every ``webhook_poll_seconds``, in a thread: claims and
    outcomes are short write transactions, and no transaction is open while a request is."""
    while True:
        try:
            await asyncio.to_thread(webhooks.deliver_due, db, keys, settings, stop=stop)
        except Exception as exc:  # logged and retried next round; never kills the server
            log.error("webhook delivery failed", extra={"error_type": type(exc).__name__})
        await asyncio.sleep(settings.webhook_poll_seconds)


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    knowledge_base: KnowledgeBase | None = None,
) -> FastAPI:
    settings = settings or Settings()
    db = database or create_database(settings.effective_database_url, background_checkpoint=True)
    kb = knowledge_base or load_kb()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        db.start()
        purger = (
            asyncio.create_task(_purge_periodically(db, settings.purge_interval_seconds))
            if settings.purge_interval_seconds > 0
            else None
        )
        stop_worker = threading.Event()
        worker = None
        if settings.batch_worker:
            worker = threading.Thread(
                target=batches.run_worker,
                args=(db, kb, app.state.keys, stop_worker),
                name="batch-worker",
                daemon=True,
            )
            worker.start()
        stop_webhooks = threading.Event()
        deliverer = (
            asyncio.create_task(
                _deliver_webhooks_periodically(db, app.state.keys, settings, stop_webhooks)
            )
            if settings.webhook_poll_seconds > 0
            else None
        )
        yield
        stop_webhooks.set()  # the thread ends after the delivery in hand
        if deliverer is not None:
            deliverer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deliverer
        stop_worker.set()
        if worker is not None:  # it finishes the chunk in hand; unfinished claims expire
            await asyncio.to_thread(worker.join)
        if purger is not None:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
        if database is None:  # we opened it, we close it
            db.dispose()

    app: FastAPI = FastAPIOffline(
        title="INTERPOL notice screening API",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        redoc_url=None,
        lifespan=lifespan,
        swagger_ui_parameters={"defaultModelsExpandDepth": 0, "tryItOutEnabled": True},
    )
    app.state.settings = settings
    app.state.db = db
    app.state.kb = kb
    app.state.migration_head = migrate.head_revision()
    app.state.tokens = TokenService(
        settings.signing_key_pem(),
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        ttl_seconds=settings.token_ttl_seconds,
    )
    app.state.keys = KeyRing(settings.master_key_bytes())
    app.state.metrics = Metrics()
    app.state.limiter = RateLimiter(
        Limits(
            per_client=parse_limit(settings.rate_limit_client),
            per_tenant=parse_limit(settings.rate_limit_tenant),
        )
    )

    errors.install(app)
    for router in (
        health_api.router,
        auth_api.router,
        screenings_api.router,
        batches_api.router,
        knowledge_api.router,
        clients_api.router,
        tenant_api.router,
        audit_api.router,
        webhooks_api.router,
    ):
        app.include_router(router)

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["Location", "X-Request-ID", "ETag", "Retry-After"],
        )
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        larger={"/v1/batches": settings.max_batch_bytes},
    )
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    return app
