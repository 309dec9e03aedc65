"""Opaque keyset cursors over (timestamp, id), newest first."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Any, TypeVar

from sqlmodel import Session, col, or_
from sqlmodel.sql.expression import SelectOfScalar

from app.errors import Unprocessable

T = TypeVar("T")


def encode_keyset(at: datetime, ident: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{ident}".encode()).decode().rstrip("=")


def decode_keyset(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor points after; a cursor we did not issue is a 422."""
    try:
        at, _, ident = base64.urlsafe_b64decode(cursor.encode() + b"==").decode().partition("|")
        return datetime.fromisoformat(at), uuid.UUID(ident)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Unprocessable("The cursor is not valid.") from None


def keyset_page(
    session: Session,
    query: SelectOfScalar[T],
    at: Any,
    ident: Any,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[T], str | None]:
    """One page of ``query``, newest first by (``at``, ``ident``), and the next cursor."""
    if cursor:
        after_at, after_id = decode_keyset(cursor)
        query = query.where(
            or_(col(at) < after_at, (col(at) == after_at) & (col(ident) < after_id))
        )
    query = query.order_by(at.desc(), ident.desc()).limit(limit + 1)
    rows = list(session.exec(query).all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_keyset(getattr(last, at.key), getattr(last, ident.key))
