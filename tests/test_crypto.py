"""Sealing: round trips, and every way a sealed value can be misused fails closed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.crypto import (
    DecryptionError,
    aad,
    encode_key,
    key_id,
    new_key,
    open_sealed,
    parse_master_key,
    seal,
)

KEY = new_key()
PLACE = aad("tenant", "screenings", "result", "row-1")


@settings(max_examples=300, derandomize=True, database=None)
@given(st.text())
def test_round_trip_of_any_unicode(text: str) -> None:
    sealed = seal(KEY, text.encode(), PLACE)
    if len(text.encode()) >= 8:  # shorter byte strings can occur in random ciphertext
        assert text.encode() not in sealed
    assert open_sealed(KEY, sealed, PLACE).decode() == text


def test_each_seal_is_fresh() -> None:
    assert seal(KEY, b"same", PLACE) != seal(KEY, b"same", PLACE)


@pytest.mark.parametrize(
    "misuse",
    [
        "other tenant",
        "other column",
        "other row",
        "other key",
        "flipped byte",
        "truncated",
        "unknown version",
        "empty",
    ],
)
def test_misuse_fails_closed(misuse: str) -> None:
    sealed = seal(KEY, b"CANARY personal data", PLACE)
    key, place, blob = KEY, PLACE, sealed
    if misuse == "other tenant":
        place = aad("tenant-b", "screenings", "result", "row-1")
    elif misuse == "other column":
        place = aad("tenant", "screenings", "request", "row-1")
    elif misuse == "other row":
        place = aad("tenant", "screenings", "result", "row-2")
    elif misuse == "other key":
        key = new_key()
    elif misuse == "flipped byte":
        blob = sealed[:20] + bytes([sealed[20] ^ 1]) + sealed[21:]
    elif misuse == "truncated":
        blob = sealed[:-1]
    elif misuse == "unknown version":
        blob = b"\x02" + sealed[1:]
    else:
        blob = b""
    with pytest.raises(DecryptionError):
        open_sealed(key, blob, place)


def test_associated_data_parts_cannot_smuggle_the_separator() -> None:
    with pytest.raises(ValueError, match=r"must not contain"):
        aad("a|b", "c")


def test_master_key_parsing_accepts_both_base64_alphabets() -> None:
    key = bytes(range(200, 232))  # contains bytes that encode to '+' '/' or '-' '_'
    import base64

    assert parse_master_key(base64.b64encode(key).decode()) == key
    assert parse_master_key(encode_key(key)) == key
    assert key_id(key) != key_id(new_key())
