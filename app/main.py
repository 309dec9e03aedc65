"""``create_app(settings)``: the FastAPI application, assembled from its parts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

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
from app.api import releases as releases_api
from app.api import reports as reports_api
from app.api import screenings as screenings_api
from app.api import tenant as tenant_api
from app.api import webhooks as webhooks_api
from app.auth import SecretHasher, TokenService
from app.db import Database, create_database
from app.kb.loader import KnowledgeBase
from app.kb.loader import load as load_kb
from app.keys import KeyRing
from app.observability import BodyLimitMiddleware, Metrics, RequestContextMiddleware
from app.ratelimit import Limits, RateLimiter, make_storage, parse_limit
from app.releases import Releases
from app.revocation import Revocations
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
    {
        "name": "tenants",
        "description": "Your tenant's API clients, retention period and webhooks.",
    },
    {"name": "operations", "description": "Health, readiness and metrics."},
]


async def _periodically(what: str, interval: float, work: Callable[[], object]) -> None:
    """Run ``work`` in a thread now and then every ``interval`` seconds until cancelled; its
    transactions are short, so requests keep being served. Errors are logged and retried."""
    while True:
        try:
            await asyncio.to_thread(work)
        except Exception as exc:  # never kills the server
            log.error(
                "background work failed", extra={"where": what, "error_type": type(exc).__name__}
            )
        await asyncio.sleep(interval)


def _every(what: str, interval: float, work: Callable[[], object]) -> asyncio.Task[None] | None:
    return asyncio.create_task(_periodically(what, interval, work)) if interval > 0 else None


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    knowledge_base: KnowledgeBase | None = None,
) -> FastAPI:
    settings = settings or Settings()
    db = database or create_database(
        settings.effective_database_url,
        background_checkpoint=True,
        pool_timeout=settings.db_pool_timeout_seconds,
    )
    kb = knowledge_base or load_kb()
    releases = Releases(kb, db, refresh_seconds=settings.kb_refresh_seconds)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        db.start()
        await asyncio.to_thread(releases.store_builtin)
        await asyncio.to_thread(releases.refresh)
        follower = _every("knowledge refresh", settings.kb_refresh_seconds, releases.refresh)
        purger = _every(
            "retention purge", settings.purge_interval_seconds, partial(retention.purge, db)
        )
        stop_worker = threading.Event()
        worker = None
        if settings.batch_worker:
            worker = threading.Thread(
                target=batches.run_worker,
                args=(db, releases, app.state.keys, stop_worker),
                kwargs={"wake": app.state.batch_bell},
                name="batch-worker",
                daemon=True,
            )
            worker.start()
        stop_webhooks = threading.Event()
        deliverer = _every(
            "webhook delivery",
            settings.webhook_poll_seconds,
            partial(webhooks.deliver_due, db, app.state.keys, settings, stop=stop_webhooks),
        )
        yield
        stop_webhooks.set()  # the thread ends after the delivery in hand
        await _cancel(deliverer)
        stop_worker.set()
        app.state.batch_bell.set()
        if worker is not None:  # it finishes the chunk in hand; unfinished claims expire
            await asyncio.to_thread(worker.join)
        await _cancel(purger)
        await _cancel(follower)
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
    app.state.releases = releases  # .active(): the release screenings use now
    app.state.migration_head = migrate.head_revision()
    app.state.revocations = Revocations(db)
    app.state.tokens = TokenService(
        settings.signing_key_pem(),
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        ttl_seconds=settings.token_ttl_seconds,
    )
    app.state.keys = KeyRing(settings.master_key_bytes())
    app.state.secret_hasher = SecretHasher(settings.master_key_bytes())
    app.state.batch_bell = threading.Event()  # set: new batch work is committed
    app.state.upload_slots = batches.UploadSlots(
        per_tenant=settings.batch_uploads_per_tenant, total=settings.batch_uploads_total
    )
    app.state.metrics = Metrics()
    app.state.limiter = RateLimiter(
        Limits(
            per_client=parse_limit(settings.rate_limit_client),
            per_tenant=parse_limit(settings.rate_limit_tenant),
            token_per_address=parse_limit(settings.rate_limit_token_address),
            token_per_client=parse_limit(settings.rate_limit_token_client),
        ),
        make_storage(settings.rate_limit_storage_url),
    )

    errors.install(app)
    for router in (
        health_api.router,
        auth_api.router,
        screenings_api.router,
        reports_api.router,
        batches_api.router,
        knowledge_api.router,
        releases_api.router,
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
        larger={
            "/v1/batches": settings.max_batch_bytes,
            "/v1/knowledge/releases": settings.max_release_bytes,
        },
    )
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    return app
