"""Batch uploads are read as a stream with bounded memory, and at most
BATCH_UPLOADS_PER_TENANT of one tenant are read at once (429 with Retry-After beyond), on
both databases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app import batch_io, batches
from app.keys import KeyRing
from app.main import create_app
from tests.conftest import make_client, token_for

pytestmark = pytest.mark.anyio

ITEM = {
    "client_ref": "case-1",
    "subject": {"ethnicity": "Uyghur", "profile_tags": ["activist"]},
    "notice": {"type": "red_notice", "issuing_country": "CN", "charges": "terrorism"},
}
CHUNK = 64 * 1024
CHUNKS = 200  # about 13 MB offered by each upload below


class Body:
    """A request body sent chunk by chunk, counting how much the server asked for; with
    ``gate`` it waits before each chunk after the first until the gate is opened."""

    def __init__(self, first: bytes, filler: bytes, gate: asyncio.Event | None = None) -> None:
        self.first, self.filler, self.gate = first, filler, gate
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.sent += 1
        yield self.first
        for _ in range(CHUNKS):
            if self.gate is not None:
                await self.gate.wait()
            self.sent += 1
            yield self.filler


def _ndjson_lines(n: int) -> bytes:
    return ("\n".join(json.dumps(ITEM) for _ in range(n)) + "\n").encode()


@pytest.mark.parametrize(
    ("media", "first", "filler"),
    [
        # Not an array: refused at its first character.
        ("application/json", b'{"client_ref": "x"}', b" " * CHUNK),
        # A header of unknown columns: refused at the first line.
        ("text/csv", b"name,date_of_birth\n", b"Zeynep,1990-01-01\n" * (CHUNK // 18)),
        # Past 50,000 items: refused at item 50,001, not after the whole body.
        ("application/x-ndjson", _ndjson_lines(batch_io.MAX_ITEMS), _ndjson_lines(400)),
    ],
    ids=["json", "csv", "ndjson"],
)
async def test_an_unreadable_upload_is_refused_before_its_body_is_read(
    client: httpx.AsyncClient, auth_a: dict[str, str], media: str, first: bytes, filler: bytes
) -> None:
    body = Body(first, filler)
    r = await client.post("/v1/batches", content=body, headers={**auth_a, "Content-Type": media})
    print(f"SECMETRIC upload_stream media={media} status={r.status_code} chunks_read={body.sent}")
    assert r.status_code == 400, r.text
    # Read as a stream: the refusal came after the first few chunks, not after all of them
    # (reading the whole body first, as before, takes every one).
    assert body.sent < 40  # the queue holds 4 hand-overs of 4 chunks


async def test_uploads_over_the_byte_cap_are_413_while_streaming(
    settings: Any, database: Any, kb: Any
) -> None:
    small = settings.model_copy(update={"max_batch_bytes": 256 * 1024})
    app = create_app(small, database=database, knowledge_base=kb)
    creds = make_client(database, "tenant-a")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        headers = {
            "Authorization": f"Bearer {await token_for(client, creds)}",
            "Content-Type": "application/x-ndjson",
        }
        body = Body(_ndjson_lines(1), _ndjson_lines(200))  # chunked: no Content-Length
        chunked = await client.post("/v1/batches", content=body, headers=headers)
        sized = await client.post(
            "/v1/batches", content=_ndjson_lines(2000), headers=headers
        )  # Content-Length over the cap
        listed = await client.get("/v1/audit", headers=headers)
    print(f"SECMETRIC upload_cap chunked={chunked.status_code} sized={sized.status_code}")
    assert chunked.status_code == 413
    assert sized.status_code == 413
    assert chunked.headers["content-type"] == "application/problem+json"
    assert body.sent < CHUNKS  # refused once past the cap, not after the whole body
    assert "batch.created" not in listed.text


async def test_at_most_k_uploads_of_a_tenant_at_once(settings: Any, database: Any, kb: Any) -> None:
    limited = settings.model_copy(update={"batch_uploads_per_tenant": 2, "batch_uploads_total": 8})
    app = create_app(limited, database=database, knowledge_base=kb)
    a, b = make_client(database, "tenant-a"), make_client(database, "tenant-b")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", timeout=60
    ) as client:
        ha = {"Authorization": f"Bearer {await token_for(client, a)}"}
        hb = {"Authorization": f"Bearer {await token_for(client, b)}"}
        ndjson = {"Content-Type": "application/x-ndjson"}
        gate = asyncio.Event()
        slow = [Body(_ndjson_lines(1), _ndjson_lines(1), gate) for _ in range(2)]
        held = [
            asyncio.ensure_future(client.post("/v1/batches", content=s, headers={**ha, **ndjson}))
            for s in slow
        ]
        while not all(s.sent for s in slow):  # both uploads are being read
            await asyncio.sleep(0.01)
        third = await client.post("/v1/batches", content=_ndjson_lines(3), headers={**ha, **ndjson})
        other_tenant = await client.post(
            "/v1/batches", content=_ndjson_lines(3), headers={**hb, **ndjson}
        )
        gate.set()
        finished = await asyncio.gather(*held)
        after = await client.post("/v1/batches", content=_ndjson_lines(3), headers={**ha, **ndjson})
    print(
        f"SECMETRIC upload_slots per_tenant=2 held={[r.status_code for r in finished]} "
        f"third={third.status_code} other_tenant={other_tenant.status_code} "
        f"after={after.status_code}"
    )
    assert third.status_code == 429
    assert third.headers["content-type"] == "application/problem+json"
    assert int(third.headers["retry-after"]) >= 1
    assert other_tenant.status_code == 202  # another tenant's upload is not held back
    assert [r.status_code for r in finished] == [202, 202]
    assert [r.json()["counts"]["total"] for r in finished] == [1 + CHUNKS] * 2
    assert after.status_code == 202  # slots are given back


def test_upload_slots_count_per_tenant_and_in_all() -> None:
    import uuid

    slots = batches.UploadSlots(per_tenant=2, total=3)
    t1, t2, t3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert [slots.acquire(t1) for _ in range(3)] == [True, True, False]
    assert slots.acquire(t2)
    assert not slots.acquire(t3)  # three held in all
    slots.release(t1)
    assert slots.acquire(t3)


def test_the_streamed_fingerprint_is_the_whole_uploads() -> None:
    import uuid

    keys = KeyRing(b"k" * 32)
    tenant = uuid.uuid4()
    data = _ndjson_lines(50)
    pieces = [data[i : i + 7] for i in range(0, len(data), 7)]
    sealed = batches.read_upload(keys, tenant, iter(pieces), "application/x-ndjson")
    assert sealed.total == 50
    assert sealed.digest == keys.fingerprint(tenant, data)


def _summary(items: list[batch_io.Item]) -> list[tuple[int, str | None, bool, int]]:
    return [(i.row, i.client_ref, i.request is not None, len(i.problems)) for i in items]


@pytest.mark.parametrize(
    ("media", "data"),
    [
        # Bare \r line ends (spreadsheets still write them), \r\n inside a quoted field.
        ("text/csv", b'client_ref,full_name\rok,"Na\r\nme"\rbad,x\r'),
        ("text/csv", b"client_ref,issuing_country\r\nok,FR\r\nbad,XXX\r\n"),
        # Numbers and literals cut between chunks must not be read short.
        ("application/json", b'[{"client_ref": "a"}, 12345, true, {"client_ref": "b"}]'),
        ("application/x-ndjson", b'{"client_ref": "a"}\r\n\nnot json\n{"client_ref": "b"}'),
    ],
    ids=["csv-cr", "csv-crlf", "json", "ndjson"],
)
def test_chunks_cut_anywhere_parse_like_the_whole_upload(media: str, data: bytes) -> None:
    whole = _summary(batch_io.parse(data, media))
    assert whole
    for size in range(1, len(data) + 1):
        pieces = [data[i : i + size] for i in range(0, len(data), size)]
        assert _summary(list(batch_io.parse_stream(pieces, media))) == whole, size
