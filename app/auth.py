"""Client credentials, access tokens and scopes. The only module that imports ``jose``.

Tokens are RS256 JWTs with ``typ: at+jwt`` (RFC 9068). Verification follows RFC 8725: one
algorithm bound to a pre-built key object, required ``exp``/``iat``/``aud``/``iss``/``sub``/
``jti``, integer NumericDates, a bounded lifetime, no ``crit``, exactly three segments. Every
failure, whatever the library raises, becomes :class:`InvalidToken` and so one constant 401.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jose import jwk, jwt

from app.crypto import DecryptionError, open_sealed, seal

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

# knowledge:admin changes what every tenant's screenings say: it is an operator's power, held
# only by operator clients (``create-client --operator``), which belong to the OPERATOR_TENANT
# and hold no scope over any tenant's data. A tenant's admin holds TENANT_SCOPES.
OPERATOR_TENANT = "operator"
OPERATOR_ONLY: frozenset[str] = frozenset({Scope.KNOWLEDGE_ADMIN})
OPERATOR_SCOPES: tuple[str, ...] = (Scope.KNOWLEDGE_READ, Scope.KNOWLEDGE_ADMIN)
TENANT_SCOPES: tuple[str, ...] = tuple(s for s in ALL_SCOPES if s not in OPERATOR_ONLY)

SCOPE_DESCRIPTIONS: dict[str, str] = {
    Scope.SCREENINGS_READ: "Read and list your tenant's screenings and reports",
    Scope.SCREENINGS_WRITE: "Create, re-screen and erase screenings",
    Scope.BATCHES_WRITE: "Submit and manage batches and webhooks",
    Scope.KNOWLEDGE_READ: "Read the knowledge base",
    Scope.KNOWLEDGE_ADMIN: "Upload and activate knowledge-base releases (operator clients only)",
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
#
# Client secrets are 256 random bits (``new_client_secret``), so a slow password hash buys
# nothing against guessing and costs the service: Argon2id at the library's profile (m=64 MiB,
# t=3, p=4) took a median 110-140 ms per verification here against 3-7 us for HMAC-SHA-256
# (bench/secret_bench.py), and a flood of bad credentials at the token endpoint exhausted CPU,
# memory and (while the hash ran) the database pool. A secret is stored instead as
# HMAC-SHA-256 under a random per-client pepper that is itself stored sealed (AES-256-GCM)
# under a key derived from the master key, which is never stored: a database file alone does
# not let anyone test a guess, and re-wrapping under a new master key re-seals the pepper
# without needing the secret. Hashes written before (Argon2id) still verify and are replaced
# by the HMAC form on the client's next successful token request.

HMAC_SCHEME = "hmac-sha256"
ARGON2_PREFIX = "$argon2"
_PEPPER_KEK_INFO = b"notice-screening client-secret pepper key v1"
_DUMMY_CLIENT = "cl_dummy"

_argon2 = PasswordHasher()  # only to verify hashes written before HMAC-SHA-256


def new_client_id() -> str:
    return "cl_" + secrets.token_hex(10)


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


def is_legacy_hash(secret_hash: str | None) -> bool:
    """An Argon2id hash from before HMAC-SHA-256: slow to verify, replaced on next use."""
    return secret_hash is not None and secret_hash.startswith(ARGON2_PREFIX)


def verify_legacy_secret(secret_hash: str, secret: str) -> bool:
    try:
        return _argon2.verify(secret_hash, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class SecretHasher:
    """Hashes and verifies client secrets: ``hmac-sha256$<sealed pepper>$<hex digest>``, the
    pepper sealed under a key derived (HKDF-SHA-256) from the master key and bound to the
    client id."""

    def __init__(self, master_key: bytes) -> None:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PEPPER_KEK_INFO)
        self._kek = hkdf.derive(master_key)
        self._dummy = self.hash(secrets.token_urlsafe(32), client_id=_DUMMY_CLIENT)

    @staticmethod
    def _aad(client_id: str) -> bytes:
        return b"client-secret|" + client_id.encode("utf-8", "surrogatepass")

    @staticmethod
    def _digest(pepper: bytes, secret: str) -> str:
        data = secret.encode("utf-8", "surrogatepass")
        return hmac.new(pepper, data, hashlib.sha256).hexdigest()

    def _format(self, pepper: bytes, digest: str, client_id: str) -> str:
        sealed = seal(self._kek, pepper, self._aad(client_id))
        return f"{HMAC_SCHEME}${base64.urlsafe_b64encode(sealed).decode()}${digest}"

    def _pepper(self, secret_hash: str, client_id: str) -> tuple[bytes, str] | None:
        scheme, _, rest = secret_hash.partition("$")
        sealed_b64, _, digest = rest.partition("$")
        if scheme != HMAC_SCHEME:
            return None
        try:
            return open_sealed(
                self._kek, base64.urlsafe_b64decode(sealed_b64), self._aad(client_id)
            ), digest
        except (DecryptionError, ValueError):
            return None

    def hash(self, secret: str, *, client_id: str) -> str:
        pepper = secrets.token_bytes(32)
        return self._format(pepper, self._digest(pepper, secret), client_id)

    def verify(self, secret_hash: str | None, secret: str, *, client_id: str) -> bool:
        """Same work whether or not the client exists (an unknown one checks a dummy hash)."""
        opened = self._pepper(
            secret_hash or self._dummy, client_id if secret_hash else _DUMMY_CLIENT
        )
        if opened is None:
            return False
        pepper, digest = opened
        ok = hmac.compare_digest(self._digest(pepper, secret), digest)
        return ok and secret_hash is not None

    def rewrap(self, secret_hash: str, *, client_id: str, new: SecretHasher) -> str | None:
        """The same hash with its pepper sealed under ``new``'s key (a new master key), or
        ``None`` when it is not an HMAC hash this hasher can open."""
        opened = self._pepper(secret_hash, client_id)
        if opened is None:
            return None
        return new._format(opened[0], opened[1], client_id)


def hash_secret(secret: str) -> str:
    """A legacy Argon2id hash; kept for tests of the migration to HMAC-SHA-256."""
    return _argon2.hash(secret)


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
