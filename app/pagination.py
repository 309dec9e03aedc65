"""Opaque keyset cursors over (timestamp, id), newest first."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator
from sqlmodel import Session, col, or_
from sqlmodel.sql.expression import SelectOfScalar

from app.errors import Unprocessable

T = TypeVar("T")


def _in_utc(value: datetime) -> datetime:
    """The same instant in UTC (a time without an offset is taken as UTC). An instant that UTC
    cannot hold (0001-01-01T00:00:00+14:00 is in year 0) is a ValueError, so a 422."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the date is outside the supported range") from None


# A query parameter's timestamp, normalised to UTC while it is validated.
UtcDateTime = Annotated[datetime, AfterValidator(_in_utc)]


def encode_keyset(at: datetime, ident: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{ident}".encode()).decode().rstrip("=")


def decode_keyset(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor points after; a cursor we did not issue is a 422."""
    try:
        at, _, ident = base64.urlsafe_b64decode(cursor.encode() + b"==").decode().partition("|")
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:  # we only issue UTC positions
            raise ValueError("naive")
        return _in_utc(when), uuid.UUID(ident)
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
