"""Odd input is a 4xx, never a 5xx, on both databases (F2-F5, F13): dates and cursors at the
edges of what a datetime can hold, JSON nested a thousand levels deep, lone surrogates and NUL
in every text field (client_ref included), CSV fields past the per-field limit, and release
file names that only a search-anchored pattern would accept. The table-driven cases pin each
class; the hypothesis properties generate more of the same classes."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import anyio.from_thread
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.batch_io import MAX_CSV_FIELD, MAX_DEPTH
from app.kb.loader import read_files
from tests.conftest import Credentials, token_for
from tests.test_canary import canary_body

pytestmark = pytest.mark.anyio

EXTREME_DATES = [
    "0001-01-01T00:00:00+14:00",  # year 0 in UTC
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59.999999-14:00",  # year 10000 in UTC
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59.999999+14:00",
    "2026-01-01T00:00:00+23:59",
]
OVERFLOWING = {"0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999999-14:00"}
ODD_TEXT = ["a\ud800b", "\udfff", "a\x00b", "\x00"]
BASE = {"subject": {"full_name": "Odd Input", "nationalities": ["TR"]}}


def _cursor(at: str) -> str:
    raw = f"{at}|{uuid.uuid4()}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _raw_json(value: Any) -> bytes:
    # json.dumps escapes lone surrogates as \ud800, as a client's JSON library would send them.
    return json.dumps(value).encode("ascii")


def _nested(depth: int) -> bytes:
    """JSON for a string inside ``depth`` lists (built as text: json.dumps would recurse)."""
    return b"[" * depth + b'"x"' + b"]" * depth


def _item(depth: int, **fields: Any) -> bytes:
    head = json.dumps({"subject": {"full_name": "Deep"}, **fields})[:-1].encode("ascii")
    return head + b', "x": ' + _nested(depth) + b"}"


def _set(body: dict[str, Any], path: str, value: str) -> dict[str, Any]:
    out = copy.deepcopy(body)
    parent: Any = out
    parts = path.replace("[0]", ".0").split(".")
    for part in parts[:-1]:
        parent = parent[int(part)] if part.isdigit() else parent[part]
    last = parts[-1]
    if last.isdigit():
        parent[int(last)] = value
    else:
        parent[last] = value
    return out


async def _webhook(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    r = await client.post(
        "/v1/webhooks",
        json={"url": "https://receiver.example.org/hook", "events": ["batch.completed"]},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_extreme_dates_and_cursors_are_4xx_or_answered(
    client: httpx.AsyncClient, auth_a: dict[str, str]
) -> None:
    assert (await client.post("/v1/screenings", json=BASE, headers=auth_a)).status_code == 201
    hook = await _webhook(client, auth_a)
    lists = ["/v1/screenings", "/v1/audit", f"/v1/webhooks/{hook}/deliveries"]
    statuses: list[int] = []
    for at in EXTREME_DATES:
        for name in ("created_after", "created_before"):
            r = await client.get("/v1/screenings", params={name: at}, headers=auth_a)
            statuses.append(r.status_code)
            assert r.status_code == (422 if at in OVERFLOWING else 200), (name, at, r.text)
        for path in lists:
            r = await client.get(path, params={"cursor": _cursor(at)}, headers=auth_a)
            statuses.append(r.status_code)
            if at in OVERFLOWING or ("+" not in at and "Z" not in at and "-14" not in at):
                assert r.status_code == 422, (path, at, r.text)
            else:
                assert r.status_code == 200, (path, at, r.text)
            assert at not in r.text
    print(f"SECMETRIC odd_dates requests={len(statuses)} 5xx={sum(s >= 500 for s in statuses)}")


async def test_deep_nesting_is_one_items_problem_or_a_4xx(
    client: httpx.AsyncClient, auth_a: dict[str, str]
) -> None:
    lines = [_raw_json(BASE), _item(1000), _item(MAX_DEPTH + 1), _raw_json(BASE)]
    lines.append(_nested(100_000))  # past the recursion limit
    ndjson = b"\n".join(lines)
    headers = {**auth_a, "Content-Type": "application/x-ndjson"}
    r = await client.post("/v1/batches", content=ndjson, headers=headers)
    assert r.status_code == 202, r.text
    counts = r.json()["counts"]
    assert (counts["total"], counts["invalid"]) == (5, 3)
    results = (await client.get(r.headers["location"] + "/results", headers=auth_a)).json()
    problems = [i["problems"] for i in results["items"] if i["state"] == "invalid"]
    assert len(problems) == 3
    # A JSON array too deep for the parser is refused whole, as a 400.
    array = b"[" + b"[" * 100_000 + b"]" * 100_000 + b"]"
    r = await client.post(
        "/v1/batches", content=array, headers={**auth_a, "Content-Type": "application/json"}
    )
    assert r.status_code == 400, r.text
    # A screening body nested that deep is a 4xx too.
    r = await client.post(
        "/v1/screenings",
        content=b'{"subject": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        headers={**auth_a, "Content-Type": "application/json"},
    )
    assert 400 <= r.status_code < 500, r.text
    print("SECMETRIC odd_nesting ndjson_items=5 invalid=3 array_status=400 screening=4xx")


async def test_lone_surrogates_and_nul_in_every_text_field_are_refused(
    client: httpx.AsyncClient, auth_a: dict[str, str]
) -> None:
    body, fields = canary_body()
    assert len(fields) >= 10
    statuses = []
    for path in fields:
        for odd in ODD_TEXT:
            r = await client.post(
                "/v1/screenings",
                content=_raw_json(_set(body, path, odd)),
                headers={**auth_a, "Content-Type": "application/json"},
            )
            statuses.append(r.status_code)
            assert r.status_code == 422, (path, repr(odd), r.text)
    # In a batch: each such item is that item's problem; client_ref included.
    items = [{**BASE, "client_ref": odd} for odd in ODD_TEXT]
    items += [_set(body, path, ODD_TEXT[0]) for path in list(fields)[:3]]
    upload = b"\n".join(_raw_json(i) for i in [BASE, *items])
    r = await client.post(
        "/v1/batches", content=upload, headers={**auth_a, "Content-Type": "application/x-ndjson"}
    )
    assert r.status_code == 202, r.text
    assert r.json()["counts"]["invalid"] == len(items)
    print(
        f"SECMETRIC odd_text fields={len(fields)} values={len(ODD_TEXT)} "
        f"requests={len(statuses)} status_set={sorted(set(statuses))} batch_items={len(items)}"
    )


async def test_csv_fields_past_the_limit_are_refused_or_the_items_problem(
    client: httpx.AsyncClient, auth_a: dict[str, str]
) -> None:
    headers = {**auth_a, "Content-Type": "text/csv"}
    huge_header = ("client_ref,full_name," + "x" * 200_000 + "\r\na,b,c\r\n").encode()
    r = await client.post("/v1/batches", content=huge_header, headers=headers)
    assert r.status_code == 400, r.text
    long_field = f"client_ref,full_name\r\nok,Name\r\nlong,{'n' * (MAX_CSV_FIELD + 1)}\r\n"
    r = await client.post("/v1/batches", content=long_field.encode(), headers=headers)
    assert r.status_code == 202, r.text
    assert (r.json()["counts"]["total"], r.json()["counts"]["invalid"]) == (2, 1)
    huge_field = f"client_ref,full_name\r\nok,Name\r\nhuge,{'n' * 200_000}\r\n"
    r = await client.post("/v1/batches", content=huge_field.encode(), headers=headers)
    assert r.status_code == 400, r.text
    nul = "client_ref,full_name\r\nok,Na\x00me\r\n"
    r = await client.post("/v1/batches", content=nul.encode(), headers=headers)
    assert r.status_code == 202, r.text
    assert r.json()["counts"]["invalid"] == 1


async def test_release_file_names_must_match_whole(
    client: httpx.AsyncClient, operator: Credentials
) -> None:
    auth = {"Authorization": f"Bearer {await token_for(client, operator)}"}
    files: Any = copy.deepcopy(read_files())
    files["release.yaml"]["version"] = "9.9.9"
    for name in ("sources/x.yaml\n", "x.yaml\n", "../x.yaml", "x.yaml\x00"):
        bad = {**files, name: files.get("sources.yaml", {})}
        r = await client.post("/v1/knowledge/releases", json={"files": bad}, headers=auth)
        assert r.status_code == 422, (repr(name), r.text)
        assert name.strip() not in r.text


# --- generated cases -------------------------------------------------------------------------

_offsets = st.timedeltas(
    min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
)
_edge_datetimes = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 3)),
    st.datetimes(min_value=datetime(9999, 12, 29), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.datetimes(),
)
_odd_chars = st.characters(categories=["Cs", "Cc"])


def _refused(c: str) -> bool:
    """A lone surrogate or a control character other than tab, newline and carriage return."""
    return 0xD800 <= ord(c) <= 0xDFFF or (ord(c) < 0x20 and c not in "\t\n\r") or c == "\x7f"


_odd_strings = st.text(
    alphabet=st.one_of(_odd_chars, st.characters()), min_size=1, max_size=20
).filter(lambda s: any(_refused(c) for c in s))
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def test_generated_dates_cursors_texts_and_depths_never_get_a_5xx(
    client: httpx.AsyncClient, auth_a: dict[str, str]
) -> None:
    body, fields = canary_body()
    paths = sorted(fields)
    seen: list[int] = []

    def get(path: str, params: dict[str, str]) -> int:
        r = anyio.from_thread.run(lambda: client.get(path, params=params, headers=auth_a))
        return r.status_code

    def post(path: str, content: bytes, media: str) -> int:
        headers = {**auth_a, "Content-Type": media}
        r = anyio.from_thread.run(lambda: client.post(path, content=content, headers=headers))
        return r.status_code

    @PROPERTY
    @given(moment=_edge_datetimes, offset=_offsets)
    def dates(moment: datetime, offset: timedelta) -> None:
        at = moment.replace(tzinfo=timezone(offset)).isoformat()
        for status in (
            get("/v1/screenings", {"created_after": at}),
            get("/v1/screenings", {"cursor": _cursor(at)}),
            get("/v1/audit", {"cursor": _cursor(at)}),
        ):
            seen.append(status)
            assert status in (200, 422), at

    @PROPERTY
    @given(index=st.integers(0, len(paths) - 1), odd=_odd_strings)
    def texts(index: int, odd: str) -> None:
        status = post(
            "/v1/screenings?store=false",
            _raw_json(_set(body, paths[index], odd)),
            "application/json",
        )
        seen.append(status)
        assert status == 422, (paths[index], repr(odd))

    @PROPERTY
    @given(depth=st.integers(1, 3000), ref=st.one_of(st.none(), _odd_strings))
    def depths(depth: int, ref: str | None) -> None:
        extra = {"client_ref": ref} if ref is not None else {}
        upload = _raw_json(BASE) + b"\n" + _item(depth, **extra)
        status = post("/v1/batches", upload, "application/x-ndjson")
        seen.append(status)
        assert status == 202, (depth, repr(ref))

    # Huge fields: every free-text field (client_ref included) from one past its limit to far
    # past it, in a screening (422, or 413 past the body limit) and in a batch item of each
    # upload format (that item's problem; a CSV line past the reader's limit refuses the
    # upload with a 400); and odd text in every text field of a batch item.
    text_paths = [*paths, "client_ref"]
    huge = st.integers(1, 150_000).map(lambda extra: "h" * (MAX_CSV_FIELD + extra))

    @PROPERTY
    @given(index=st.integers(0, len(paths) - 1), value=huge)
    def huge_fields(index: int, value: str) -> None:
        status = post(
            "/v1/screenings?store=false",
            _raw_json(_set(body, paths[index], value)),
            "application/json",
        )
        seen.append(status)
        assert status in (413, 422), (paths[index], len(value))

    @PROPERTY
    @given(
        index=st.integers(0, len(text_paths) - 1),
        value=st.one_of(_odd_strings, huge),
        media=st.sampled_from(["application/json", "application/x-ndjson", "text/csv"]),
    )
    def item_fields(index: int, value: str, media: str) -> None:
        path = text_paths[index]
        item = _set(body, path, value) if path != "client_ref" else {**body, "client_ref": value}
        if media == "application/json":
            upload = _raw_json([BASE, item])
        elif media == "application/x-ndjson":
            upload = _raw_json(BASE) + b"\n" + _raw_json(item)
        else:
            column = path if path == "client_ref" else "full_name"
            cell = value.replace('"', '""')
            upload = f'client_ref,full_name\r\nok,Name\r\n"{cell}",x\r\n'.encode(
                "utf-8", "surrogatepass"
            )
            if column == "full_name":
                upload = f'client_ref,full_name\r\nok,Name\r\nref,"{cell}"\r\n'.encode(
                    "utf-8", "surrogatepass"
                )
        r = anyio.from_thread.run(
            lambda: client.post(
                "/v1/batches", content=upload, headers={**auth_a, "Content-Type": media}
            )
        )
        seen.append(r.status_code)
        if media == "text/csv" and r.status_code == 400:
            # Not UTF-8 (a lone surrogate cannot be encoded), a NUL or a line past the
            # reader's limit: the upload is refused whole, never a 5xx.
            return
        assert r.status_code == 202, (path, media, len(value))
        counts = r.json()["counts"]
        assert (counts["total"], counts["invalid"]) == (2, 1), (path, media, len(value))

    def run_all() -> None:
        dates()
        texts()
        depths()
        huge_fields()
        item_fields()

    await anyio.to_thread.run_sync(run_all)
    print(f"SECMETRIC odd_generated requests={len(seen)} 5xx={sum(s >= 500 for s in seen)}")
    assert all(s < 500 for s in seen)
