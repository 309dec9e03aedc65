"""Opaque keyset cursors over (timestamp, id), newest first."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from app.errors import Unprocessable


def encode_keyset(at: datetime, ident: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{ident}".encode()).decode().rstrip("=")


def decode_keyset(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor points after; a cursor we did not issue is a 422."""
    try:
        at, _, ident = base64.urlsafe_b64decode(cursor.encode() + b"==").decode().partition("|")
        return datetime.fromisoformat(at), uuid.UUID(ident)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Unprocessable("The cursor is not valid.") from None
