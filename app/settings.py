"""The only place the environment is read.

``Settings`` is built once at start-up (``Settings()``) and passed to ``create_app``; nothing
else reads ``os.environ``. Production refuses to start without real key material; development
generates a signing key and a master key once and keeps them, mode 0600, in the data folder.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDERS = ("change-me", "changeme", "placeholder", "example", "secret", "xxx")
MIN_RSA_BITS = 2048


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"
    TEST = "test"


class SettingsError(ValueError):
    """The configuration is unusable; the message says which variable and why."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    app_env: Environment = Environment.DEVELOPMENT
    data_dir: Path = Path("data")
    database_url: str = ""
    signing_key: SecretStr | None = None
    signing_key_file: Path | None = None
    # The key-encryption key that wraps every tenant's data keys: 32 random bytes, base64.
    # Never stored in the database or its backups.
    master_key: SecretStr | None = None
    master_key_file: Path | None = None
    token_issuer: str = "notice-screening"
    token_audience: str = "notice-screening-api"
    token_ttl_seconds: int = Field(default=900, ge=60, le=900)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # Batch uploads (POST /v1/batches) may be larger: up to 50,000 items.
    max_batch_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, le=512 * 1024 * 1024)
    # Every API process screens batch items in a background thread; more workers run with
    # `python -m app worker` on any machine that shares the database.
    batch_worker: bool = True
    # `python -m app serve` also starts this many worker processes beside the server (stopped
    # with it), so batches use more than the one core an interpreter gets.
    batch_worker_processes: int = Field(default=1, ge=0, le=64)
    # Batch uploads read at once per API process, for one tenant and in all; past either the
    # upload is answered 429 with Retry-After before its body is read.
    batch_uploads_per_tenant: int = Field(default=2, ge=1, le=64)
    batch_uploads_total: int = Field(default=4, ge=1, le=256)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: str = "INFO"
    rate_limit_client: str = "1200/minute"
    rate_limit_tenant: str = "6000/minute"
    # POST /v1/auth/token, counted per source address and per client id before the secret is
    # checked. Behind a reverse proxy every request comes from the proxy's address: raise the
    # per-address limit there (or leave it empty) and limit at the proxy.
    rate_limit_token_address: str = "120/minute"
    rate_limit_token_client: str = "30/minute"
    # Where the counters are kept: empty for process memory (each process counts alone), or a
    # storage URL of the ``limits`` library, e.g. redis://127.0.0.1:6379/0, shared by every
    # process and machine so the limits hold for all of them together.
    rate_limit_storage_url: str = ""
    # How long a request waits for a database connection when every pooled one is in use
    # before it is answered 503 with Retry-After (instead of holding everyone for 30 s).
    db_pool_timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    # Screenings older than their tenant's retention period (tenants.retention_days) are
    # purged. The server purges every purge_interval_seconds (0: never; run
    # `python -m app purge` from a scheduler instead).
    purge_interval_seconds: int = Field(default=3600, ge=0, le=7 * 86400)
    # Webhooks (``app.webhooks``): deliveries to private, loopback, link-local and other
    # non-public addresses are refused unless webhook_allow_private is set (tests, labs).
    webhook_allow_private: bool = False
    # The total time one delivery attempt may take (connect, request, response headers and
    # redirects), not a per-read timeout a trickling receiver could stretch.
    webhook_timeout_seconds: float = Field(default=10, gt=0, le=60)
    # Deliveries in flight at once for one tenant (other tenants' proceed beside them).
    webhook_tenant_concurrency: int = Field(default=4, ge=1, le=32)
    # How often the server sends due deliveries (0: never; nothing is sent).
    webhook_poll_seconds: float = Field(default=2, ge=0, le=3600)
    # How often each process asks the database which knowledge-base release is active
    # (0: never; the process keeps the release it started with).
    kb_refresh_seconds: float = Field(default=2, ge=0, le=3600)
    # Knowledge-base release uploads (POST /v1/knowledge/releases), as uncompressed JSON.
    max_release_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=128 * 1024 * 1024)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator(
        "rate_limit_client",
        "rate_limit_tenant",
        "rate_limit_token_address",
        "rate_limit_token_client",
    )
    @classmethod
    def _limit(cls, value: str) -> str:
        from limits import parse

        if value.strip():
            try:
                parse(value)
            except ValueError:
                raise ValueError("a rate limit is like '1200/minute' (or empty for none)") from None
        return value

    @field_validator("rate_limit_storage_url")
    @classmethod
    def _storage_url(cls, value: str) -> str:
        from limits.storage import SCHEMES  # type: ignore[attr-defined]

        scheme = value.strip().partition("://")[0]
        if value.strip() and (scheme not in SCHEMES or scheme.startswith("async+")):
            raise ValueError("a rate-limit storage URL is like redis://127.0.0.1:6379/0")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.app_env is Environment.PRODUCTION:
            if not self.database_url:
                raise ValueError("DATABASE_URL is required in production")
            if self.signing_key is None and self.signing_key_file is None:
                raise ValueError("SIGNING_KEY or SIGNING_KEY_FILE is required in production")
            if self.master_key is None and self.master_key_file is None:
                raise ValueError("MASTER_KEY or MASTER_KEY_FILE is required in production")
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'screening.db').as_posix()}"

    def signing_key_pem(self) -> bytes:
        """The RSA private key in PEM, validated; generated once in development."""
        if self.signing_key is not None:
            pem = self.signing_key.get_secret_value().encode()
        elif self.signing_key_file is not None:
            pem = self.signing_key_file.read_bytes()
        elif self.app_env is Environment.PRODUCTION:
            raise SettingsError("SIGNING_KEY or SIGNING_KEY_FILE is required in production")
        else:
            pem = _dev_key(self.data_dir / "signing-key.pem")
        _check_private_key(pem)
        return pem

    def master_key_bytes(self) -> bytes:
        """The master key, validated; generated once in development and tests."""
        from app.crypto import encode_key, new_key, parse_master_key

        if self.master_key is not None:
            encoded = self.master_key.get_secret_value()
        elif self.master_key_file is not None:
            encoded = self.master_key_file.read_text(encoding="ascii")
        elif self.app_env is Environment.PRODUCTION:
            raise SettingsError("MASTER_KEY or MASTER_KEY_FILE is required in production")
        else:
            path = self.data_dir / "master-key"
            encoded = _create_once(path, (encode_key(new_key()) + "\n").encode()).decode()
        try:
            return parse_master_key(encoded)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None


def _check_private_key(pem: bytes) -> None:
    lowered = pem.decode(errors="replace").lower()
    if any(p in lowered for p in PLACEHOLDERS) and "begin" not in lowered:
        raise SettingsError("SIGNING_KEY is a placeholder, not a key")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise SettingsError("SIGNING_KEY is not a PEM-encoded private key") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < MIN_RSA_BITS:
        raise SettingsError(f"SIGNING_KEY must be an RSA key of at least {MIN_RSA_BITS} bits")


def _dev_key(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes()
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return _create_once(path, pem)


def _create_once(path: Path, content: bytes) -> bytes:
    """Write ``content`` to a new file readable by its owner only, or return what is there."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two processes starting together must not overwrite each other's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    return content
