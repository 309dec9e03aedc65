"""Named dependencies shared by the routers: sessions, the verified principal, scopes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes
from sqlmodel import Session

from app.auth import SCOPE_DESCRIPTIONS, InvalidToken, Principal
from app.db import Database
from app.errors import Forbidden, Unauthorized

TOKEN_URL = "/v1/auth/token"
T = TypeVar("T")

# Screening and report rendering are CPU work of milliseconds to a second: they run in
# threads, at most this many at once per process (the rest wait without holding the loop).
CPU_THREADS = 2
_cpu = anyio.CapacityLimiter(CPU_THREADS)


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread of the bounded CPU pool."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=_cpu)


oauth2 = OAuth2(
    flows=OAuthFlows(
        clientCredentials=OAuthFlowClientCredentials(
            tokenUrl=TOKEN_URL, scopes={str(k): v for k, v in SCOPE_DESCRIPTIONS.items()}
        )
    ),
    scheme_name="OAuth2ClientCredentials",
    description="OAuth2 client credentials. In Swagger UI: Authorize, enter the client id "
    "and secret, tick the scopes you need.",
    auto_error=False,
)

UNAUTHORIZED = Unauthorized(
    "The access token is missing, invalid or expired.",
    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
)


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


# The session dependencies and the handlers that use them are `async def` and call the
# database synchronously on the event loop: each call is short, no request pays a threadpool
# hop, and on SQLite the writers of one process take turns on the loop instead of contending
# for the file lock (whose busy handler sleeps for milliseconds). A handler must not await
# between its first statement and the commit. Replicas and workers add parallelism; slow CPU
# work (Argon2 in the token endpoint) stays in the threadpool.
async def _write_session(request: Request) -> AsyncIterator[Session]:
    with database(request).session(write=True) as session:
        yield session


async def _read_session(request: Request) -> AsyncIterator[Session]:
    with database(request).session(write=False) as session:
        yield session


# scope="function": the commit happens before the response is sent, so a 2xx is never
# returned for a write that then fails.
WriteSession = Annotated[Session, Depends(_write_session, scope="function")]
ReadSession = Annotated[Session, Depends(_read_session, scope="function")]


async def _principal(
    request: Request,
    security_scopes: SecurityScopes,
    authorization: Annotated[str | None, Depends(oauth2)],
) -> Principal:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("An access token is required.", headers={"WWW-Authenticate": "Bearer"})
    try:
        principal = request.app.state.tokens.verify(token.strip())
    except InvalidToken:
        raise UNAUTHORIZED from None
    assert isinstance(principal, Principal)
    # A disabled or deleted client's tokens stop working within a couple of seconds.
    if not request.app.state.revocations.usable(principal):
        raise UNAUTHORIZED
    request.scope.setdefault("state", {})["principal"] = principal
    # The RateLimit headers go on the response too (RequestContextMiddleware adds them), so a
    # client sees its budget before it runs out, not only in a 429.
    request.scope["state"]["ratelimit"] = request.app.state.limiter.check(principal)
    missing = [s for s in security_scopes.scopes if s not in principal.scopes]
    if missing:
        needed = " ".join(missing)
        raise Forbidden(
            f"This operation needs the scope: {' '.join(missing)}.",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed}"'},
        )
    return principal


def require(*scopes: str) -> Any:
    """Use as ``Annotated[Principal, require(scope, ...)]``: the verified principal, which must
    hold every scope named (declared in the OpenAPI document for Swagger's Authorize)."""
    return Security(_principal, scopes=list(scopes))
