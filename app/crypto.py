"""AES-256-GCM sealing of personal data with associated data. No database, no framework.

A sealed value is ``version (1 byte) || nonce (12 bytes) || ciphertext || tag (16 bytes)``.
The associated data names where the value belongs (tenant, table, column, row, key version),
so a ciphertext copied to another row, column or tenant fails to open. Nonces are random: each
key seals few values (one key per screening), far below the 2^32 messages NIST SP 800-38D
allows a key with random 96-bit nonces.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_HEADER = bytes([FORMAT_VERSION])


class DecryptionError(Exception):
    """A sealed value could not be opened: wrong key, wrong place, tampered or truncated.
    Deliberately says nothing more."""


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def key_id(key: bytes) -> str:
    """A short public identifier of a key (which master key wrapped a tenant key)."""
    return hashlib.sha256(b"key-id|" + key).hexdigest()[:16]


@functools.lru_cache(maxsize=4096)
def _aead(key: bytes) -> AESGCM:
    """The cipher for a key, set up once (a batch opens thousands of values with one key)."""
    return AESGCM(key)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return _HEADER + nonce + _aead(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    if len(sealed) < 1 + NONCE_BYTES + TAG_BYTES or sealed[0] != FORMAT_VERSION:
        raise DecryptionError()
    nonce = sealed[1 : 1 + NONCE_BYTES]
    try:
        return _aead(key).decrypt(nonce, sealed[1 + NONCE_BYTES :], aad)
    except InvalidTag:
        raise DecryptionError() from None


def aad(*parts: object) -> bytes:
    """Associated data from parts; none may contain the separator."""
    text = [str(p) for p in parts]
    if any("|" in t for t in text):
        raise ValueError("associated data parts must not contain '|'")
    return "|".join(text).encode()


def parse_master_key(encoded: str) -> bytes:
    """A master key as configured: 32 random bytes, base64 (standard or URL-safe)."""
    cleaned = encoded.strip()
    try:
        raw = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        try:
            raw = base64.b64decode(cleaned, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("MASTER_KEY must be 32 bytes, base64-encoded") from None
    if len(raw) != KEY_BYTES:
        raise ValueError("MASTER_KEY must be 32 bytes, base64-encoded")
    if len(set(raw)) < 8:
        raise ValueError("MASTER_KEY is not random (too few distinct bytes)")
    return raw


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")
