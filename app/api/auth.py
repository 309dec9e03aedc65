"""``POST /v1/auth/token``: OAuth2 client credentials (RFC 6749 section 4.4)."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import unquote

import anyio
from fastapi import APIRouter, Form, Request
from pydantic import BaseModel, Field
from sqlalchemy import update
from sqlmodel import col, select

from app.api.problems import STANDARD_ERRORS
from app.auth import (
    CLIENT_ID_RE,
    OPERATOR_ONLY,
    OPERATOR_TENANT,
    SecretHasher,
    is_legacy_hash,
    parse_scope_request,
    verify_legacy_secret,
)
from app.db import Database
from app.errors import BadRequest, Unauthorized
from app.models import Client, Tenant

router = APIRouter(tags=["auth"])

# Argon2id hashes written before HMAC-SHA-256 cost about 64 MiB and tens of milliseconds each:
# at most two are verified at once (one per core), whatever the number of requests.
_LEGACY_VERIFIERS = anyio.CapacityLimiter(2)


@dataclass(frozen=True, slots=True)
class _ClientRecord:
    id: uuid.UUID
    client_id: str
    tenant_id: uuid.UUID
    scopes: frozenset[str]
    secret_hash: str | None  # None for a disabled client: nothing can match


def _lookup(db: Database, client_id: str) -> _ClientRecord | None:
    """The client's row, read in a short transaction that ends before the secret is checked,
    so no database connection waits on a hash."""
    if not CLIENT_ID_RE.fullmatch(client_id):
        return None
    with db.session(write=False) as session:
        found = session.exec(
            select(Client, Tenant.name)
            .join(Tenant, col(Tenant.id) == col(Client.tenant_id))
            .where(Client.client_id == client_id)
        ).first()
        if found is None:
            return None
        row, tenant = found
        scopes = frozenset(row.scopes)
        if tenant != OPERATOR_TENANT:  # however the row came to hold it
            scopes -= OPERATOR_ONLY
        return _ClientRecord(
            id=row.id,
            client_id=row.client_id,
            tenant_id=row.tenant_id,
            scopes=scopes,
            secret_hash=None if row.disabled else row.secret_hash,
        )


def _upgrade_hash(db: Database, record: _ClientRecord, new_hash: str) -> None:
    """Replace a legacy Argon2id hash by the HMAC form, unless the secret changed meanwhile."""
    with db.session(write=True) as session:
        session.connection().execute(
            update(Client)
            .where(Client.id == record.id, Client.secret_hash == record.secret_hash)  # type: ignore[arg-type]
            .values(secret_hash=new_hash)
        )


class TokenResponse(BaseModel):
    access_token: str = Field(description="A JWT to send as `Authorization: Bearer <token>`.")
    token_type: str = Field(examples=["Bearer"])
    expires_in: int = Field(description="Seconds until the token expires.", examples=[900])
    scope: str = Field(description="The granted scopes, space-separated.")


def _oauth_error(status: int, error: str, detail: str, *, basic: bool = False) -> Exception:
    extra = {"error": error, "error_description": detail}
    if status == 401:
        challenge = 'Basic realm="token"' if basic else 'Bearer realm="token"'
        return Unauthorized(detail, headers={"WWW-Authenticate": challenge}, extra=extra)
    return BadRequest(detail, extra=extra)


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _oauth_error(
            401, "invalid_client", "Malformed Basic credentials.", basic=True
        ) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise _oauth_error(401, "invalid_client", "Malformed Basic credentials.", basic=True)
    # RFC 6749 section 2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote(client_id), unquote(secret)


@router.post(
    "/v1/auth/token",
    response_model=TokenResponse,
    summary="Exchange client credentials for an access token",
    description=(
        "OAuth2 client-credentials grant. Send `grant_type=client_credentials` with "
        "`client_id` and `client_secret` as form fields, or the credentials with HTTP Basic. "
        "`scope` (space-separated) narrows the token to fewer scopes than the client holds. "
        "Errors carry the OAuth2 `error` code (`invalid_client`, `invalid_request`, "
        "`unsupported_grant_type`, `invalid_scope`) in a problem+json body."
    ),
    responses={
        400: {
            "description": "Invalid request, grant type or scope",
            "content": {"application/problem+json": {}},
        },
        401: {
            "description": "Unknown client or wrong secret",
            "content": {"application/problem+json": {}},
        },
        422: STANDARD_ERRORS[422],
        429: {
            "description": "Too many token requests from this address or for this client id "
            "(counted before the secret is checked); retry after `Retry-After` seconds",
            "content": {"application/problem+json": {}},
        },
        503: {
            "description": "The database is busy; retry after `Retry-After` seconds",
            "content": {"application/problem+json": {}},
        },
    },
)
async def issue_token(
    request: Request,
    grant_type: Annotated[str | None, Form(max_length=64)] = None,
    client_id: Annotated[str | None, Form(max_length=64)] = None,
    client_secret: Annotated[str | None, Form(max_length=256)] = None,
    scope: Annotated[str | None, Form(max_length=512)] = None,
) -> TokenResponse:
    basic = _basic_credentials(request)
    if basic is not None:
        if client_id is not None and client_id != basic[0]:
            raise _oauth_error(400, "invalid_request", "Client identified twice, differently.")
        client_id, client_secret = basic
    if grant_type != "client_credentials":
        if not grant_type:
            raise _oauth_error(400, "invalid_request", "grant_type is required.")
        raise _oauth_error(400, "unsupported_grant_type", "Only client_credentials is supported.")
    if not client_id or not client_secret:
        raise _oauth_error(
            401, "invalid_client", "Client authentication failed.", basic=basic is not None
        )

    state = request.app.state
    address = request.client.host if request.client else "unknown"
    state.limiter.check_token_attempt(address=address, client_id=client_id)
    db: Database = state.db
    hasher: SecretHasher = state.secret_hasher
    client = _lookup(db, client_id)
    stored = client.secret_hash if client is not None else None
    if stored is not None and is_legacy_hash(stored):
        ok = await anyio.to_thread.run_sync(
            verify_legacy_secret, stored, client_secret, limiter=_LEGACY_VERIFIERS
        )
        if ok and client is not None:
            _upgrade_hash(db, client, hasher.hash(client_secret, client_id=client.client_id))
    else:
        ok = hasher.verify(stored, client_secret, client_id=client_id)
    if not ok or client is None:
        raise _oauth_error(
            401, "invalid_client", "Client authentication failed.", basic=basic is not None
        )

    granted = parse_scope_request(scope, client.scopes)
    if granted is None:
        raise _oauth_error(400, "invalid_scope", "The requested scope exceeds the client's scopes.")
    tokens = state.tokens
    token = tokens.issue(client_id=client.client_id, tenant_id=client.tenant_id, scopes=granted)
    return TokenResponse(
        access_token=token,
        token_type="Bearer",
        expires_in=tokens.ttl,
        scope=" ".join(sorted(granted)),
    )
