"""Client credentials, access tokens and scopes. The only module that imports ``jose``.

Tokens are RS256 JWTs with ``typ: at+jwt`` (RFC 9068). Verification follows RFC 8725: one
algorithm bound to a pre-built key object, required ``exp``/``iat``/``aud``/``iss``/``sub``/
``jti``, integer NumericDates, a bounded lifetime, no ``crit``, exactly three segments. Every
failure, whatever the library raises, becomes :class:`InvalidToken` and so one constant 401.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives import serialization
from jose import jwk, jwt

ALG = "RS256"
TYP = "at+jwt"
LEEWAY_S = 30
MAX_TOKEN_LEN = 4096
CACHE_SIZE = 4096  # verified tokens remembered until they expire
KID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
CLIENT_ID_RE = re.compile(r"[A-Za-z0-9_.-]{3,64}")


class Scope(StrEnum):
    SCREENINGS_READ = "screenings:read"
    SCREENINGS_WRITE = "screenings:write"
    BATCHES_WRITE = "batches:write"
    KNOWLEDGE_READ = "knowledge:read"
    KNOWLEDGE_ADMIN = "knowledge:admin"
    TENANTS_ADMIN = "tenants:admin"


ALL_SCOPES: tuple[str, ...] = tuple(s.value for s in Scope)
DEFAULT_SCOPES: tuple[str, ...] = (
    Scope.SCREENINGS_READ,
    Scope.SCREENINGS_WRITE,
    Scope.BATCHES_WRITE,
    Scope.KNOWLEDGE_READ,
)

SCOPE_DESCRIPTIONS: dict[str, str] = {
    Scope.SCREENINGS_READ: "Read and list your tenant's screenings and reports",
    Scope.SCREENINGS_WRITE: "Create, re-screen and erase screenings",
    Scope.BATCHES_WRITE: "Submit and manage batches and webhooks",
    Scope.KNOWLEDGE_READ: "Read the knowledge base",
    Scope.KNOWLEDGE_ADMIN: "Upload and activate knowledge-base releases",
    Scope.TENANTS_ADMIN: "Manage your tenant's clients and read its audit trail",
}


class InvalidToken(Exception):
    """Any token problem. The reason is for logs; the client always sees the same 401."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller: a client acting for exactly one tenant."""

    client_id: str
    tenant_id: uuid.UUID
    scopes: frozenset[str]
    jti: str

    def has(self, scope: str) -> bool:
        return scope in self.scopes


# --- client secrets -------------------------------------------------------------------------

_hasher = PasswordHasher()  # Argon2id, the library's RFC 9106 low-memory profile
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def new_client_id() -> str:
    return "cl_" + secrets.token_hex(10)


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(secret_hash: str | None, secret: str) -> bool:
    """Constant work whether or not the client exists, so timing reveals nothing."""
    try:
        return _hasher.verify(secret_hash or _DUMMY_HASH, secret) and secret_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def parse_scope_request(requested: str | None, granted: frozenset[str]) -> frozenset[str] | None:
    """The scopes to put in a token, or ``None`` when the request asks for more than granted."""
    if not requested or not requested.strip():
        return granted
    wanted = frozenset(requested.split())
    return wanted if wanted <= granted else None


# --- tokens ---------------------------------------------------------------------------------


class TokenService:
    """Issues and verifies access tokens with one RSA key pair."""

    def __init__(self, private_pem: bytes, *, issuer: str, audience: str, ttl_seconds: int) -> None:
        private = serialization.load_pem_private_key(private_pem, password=None)
        public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

        self.kid = hashlib.sha256(der).hexdigest()[:16]
        self._signing_key = jwk.construct(private_pem.decode(), algorithm=ALG)
        # A Key object, not bytes: the token's header cannot change how it is verified.
        self._verify_keys = {self.kid: jwk.construct(public_pem.decode(), algorithm=ALG)}
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl_seconds
        self._cache: dict[str, tuple[Principal, int]] = {}

    def issue(self, *, client_id: str, tenant_id: uuid.UUID, scopes: frozenset[str]) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": client_id,
            "tenant": str(tenant_id),
            "scope": " ".join(sorted(scopes)),
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl,
            "jti": uuid.uuid4().hex,
        }
        headers = {"kid": self.kid, "typ": TYP}
        return jwt.encode(claims, self._signing_key.to_dict(), algorithm=ALG, headers=headers)

    def verify(self, token: Any) -> Principal:
        # A token that verified once verifies again until it expires: remember it, so a client
        # that reuses its token (the normal case) pays the RSA check once per token.
        cached = self._cache.get(token) if isinstance(token, str) else None
        if cached is not None and cached[1] > time.time():
            return cached[0]
        try:
            principal, expires = self._verify(token)
        except InvalidToken:
            raise
        except Exception:  # JWTError, JWKError (not a JWTError), TypeError, OverflowError, ...
            raise InvalidToken("invalid") from None
        if len(self._cache) >= CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[token] = (principal, expires)
        return principal

    def _verify(self, token: Any) -> tuple[Principal, int]:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LEN or token.count(".") != 2:
            raise InvalidToken("shape")  # also every five-part JWE
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        if (
            header.get("alg") != ALG
            or header.get("typ") != TYP
            or "crit" in header
            or not isinstance(kid, str)
            or not KID_RE.fullmatch(kid)
            or kid not in self._verify_keys
        ):
            raise InvalidToken("header")
        claims = jwt.decode(
            token,
            self._verify_keys[kid],
            algorithms=[ALG],
            audience=self.audience,
            issuer=self.issuer,
            options={
                "require_exp": True,
                "require_iat": True,
                "require_aud": True,
                "require_iss": True,
                "require_sub": True,
                "require_jti": True,
                "leeway": LEEWAY_S,
            },
        )
        now = int(time.time())
        for name in ("exp", "iat", "nbf"):
            if name in claims and type(claims[name]) is not int:
                raise InvalidToken("numericdate")  # rejects "123", 1.5, true, null
        if claims["iat"] > now + LEEWAY_S or claims["exp"] - claims["iat"] > self.ttl:
            raise InvalidToken("lifetime")
        if claims.get("aud") != self.audience:
            raise InvalidToken("audience")  # a list holding ours is not accepted either
        sub, tenant, scope, jti = (claims.get(k) for k in ("sub", "tenant", "scope", "jti"))
        if not (isinstance(sub, str) and CLIENT_ID_RE.fullmatch(sub)):
            raise InvalidToken("sub")
        if not isinstance(scope, str) or not isinstance(jti, str) or not isinstance(tenant, str):
            raise InvalidToken("claims")
        scopes = frozenset(scope.split())
        if not scopes <= set(ALL_SCOPES):
            raise InvalidToken("scope")
        principal = Principal(client_id=sub, tenant_id=uuid.UUID(tenant), scopes=scopes, jti=jti)
        return principal, claims["exp"] + LEEWAY_S
