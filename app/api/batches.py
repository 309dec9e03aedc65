"""``/v1/batches``: upload many screening requests at once, follow them, download results."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import csv
import dataclasses
import functools
import io
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, BackgroundTasks, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from app import batch_io, batches
from app.api.deps import ReadSession, WriteSession, require
from app.api.problems import STANDARD_ERRORS, problem_response
from app.auth import Principal, Scope
from app.errors import (
    BadRequest,
    ContentTooLarge,
    NotAcceptable,
    TooManyRequests,
    UnsupportedMediaType,
)
from app.models import Batch, utcnow
from app.settings import Settings

router = APIRouter(tags=["batches"], responses=STANDARD_ERRORS)
Writer = Annotated[Principal, require(Scope.BATCHES_WRITE)]
BatchId = Annotated[uuid.UUID, Path(description="The batch's id.")]

UPLOAD_TYPES = ("application/json", "application/x-ndjson", "text/csv")
# An upload is handed to its parsing thread in pieces of about this size, at most this many
# waiting at once: what the process holds of an upload besides its sealed items.
UPLOAD_CHUNK_BYTES = 256 * 1024
UPLOAD_QUEUE_CHUNKS = 4
UPLOAD_RETRY_AFTER_SECONDS = 5
# Parsing threads wait on the network, so they have their own pool (not the CPU pool's).
_upload_threads = anyio.CapacityLimiter(64)
# The default MAX_BATCH_BYTES, stated in the schema (413 above the configured value).
MAX_UPLOAD_DOCUMENTED: int = Settings.model_fields["max_batch_bytes"].default
RESULT_TYPES = ("application/json", "application/x-ndjson", "text/csv")
CSV_RESULT_COLUMNS = (
    "row",
    "client_ref",
    "state",
    "screening_id",
    "flag",
    "score",
    "top_indicators",
    "problems",
)


class Counts(BaseModel):
    total: int
    invalid: int = Field(description="Refused at upload; their problems are in the results.")
    pending: int
    done: int
    failed: int
    cancelled: int


class Timings(BaseModel):
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    items_per_second: float | None = Field(description="Screened items per second of running.")


class BatchStatus(BaseModel):
    id: uuid.UUID
    state: str = Field(description="queued, running, completed, failed or cancelled.")
    counts: Counts
    progress: float = Field(ge=0, le=1, description="Share of the items no longer pending.")
    timings: Timings
    results_url: str


class ItemProblem(BaseModel):
    row: int
    field: str
    problem: str


class ItemResultOut(BaseModel):
    row: int
    client_ref: str | None
    state: str = Field(description="done, invalid, error, cancelled, or pending/claimed.")
    screening_id: uuid.UUID | None
    flag: str | None
    score: int | None
    top_indicators: list[str]
    problems: list[ItemProblem]


class ResultPage(BaseModel):
    items: list[ItemResultOut]
    next_cursor: str | None


def _status(session: Any, batch: Batch) -> BatchStatus:
    p = batches.progress(session, batch)
    finished = batch.total - p.pending
    rate = None
    if batch.started_at is not None and p.done + p.failed:
        end = batch.finished_at or utcnow()
        seconds = (end - batch.started_at).total_seconds()
        rate = round((p.done + p.failed) / seconds, 1) if seconds > 0 else None
    return BatchStatus(
        id=batch.id,
        state=batch.state,
        counts=Counts(
            total=batch.total,
            invalid=p.invalid,
            pending=p.pending,
            done=p.done,
            failed=p.failed,
            cancelled=p.cancelled,
        ),
        progress=round(finished / batch.total, 4) if batch.total else 1.0,
        timings=Timings(
            created_at=batch.created_at,
            started_at=batch.started_at,
            finished_at=batch.finished_at,
            items_per_second=rate,
        ),
        results_url=f"/v1/batches/{batch.id}/results",
    )


@router.get(
    "/v1/batches/template.csv",
    summary="The CSV upload template",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "Header and one example row"}},
    operation_id="batch_csv_template",
)
async def csv_template(_: Writer) -> Response:
    return Response(
        batch_io.csv_template(),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="batch-template.csv"'},
    )


@router.post(
    "/v1/batches",
    status_code=202,
    response_model=BatchStatus,
    summary="Upload a batch of screening requests",
    description=(
        "A JSON array, NDJSON (`application/x-ndjson`, one request per line) or CSV "
        "(`text/csv`, columns as in `GET /v1/batches/template.csv`; list fields separated by "
        f"`;`), up to {batch_io.MAX_ITEMS} items. Each JSON item is a screening request body "
        "plus an optional `client_ref`. Invalid items are reported one by one in the results "
        "and do not fail the batch; only an upload that cannot be read is refused. Screened "
        "in the background; follow the Location. The upload is read and parsed as it "
        "arrives; one over `MAX_BATCH_BYTES` (64 MiB by default) is a 413, and while "
        "`BATCH_UPLOADS_PER_TENANT` (2 by default) of the tenant's uploads are being read "
        "another is a 429 with `Retry-After`."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "items": {"type": "object"},
                        "maxItems": batch_io.MAX_ITEMS,
                    }
                },
                "application/x-ndjson": {
                    "schema": {"type": "string", "maxLength": MAX_UPLOAD_DOCUMENTED}
                },
                "text/csv": {"schema": {"type": "string", "maxLength": MAX_UPLOAD_DOCUMENTED}},
            },
        }
    },
    responses={
        200: {"description": "An idempotent replay", "model": BatchStatus},
        413: problem_response("The upload is over MAX_BATCH_BYTES"),
        415: problem_response("Not JSON, NDJSON or CSV"),
        429: problem_response(
            "Rate limited, or the tenant's uploads being read at once are at their limit "
            "(retry after `Retry-After` seconds)"
        ),
    },
    operation_id="create_batch",
)
async def create_batch(
    request: Request,
    principal: Writer,
    session: WriteSession,
    tasks: BackgroundTasks,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key", min_length=8, max_length=255, pattern=r"^[A-Za-z0-9._:-]+$"
        ),
    ] = None,
) -> Any:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in UPLOAD_TYPES:
        raise UnsupportedMediaType("Send application/json, application/x-ndjson or text/csv.")
    slots: batches.UploadSlots = request.app.state.upload_slots
    if not slots.acquire(principal.tenant_id):
        raise TooManyRequests(
            f"At most {slots.per_tenant} uploads of a tenant are read at once; retry after "
            "the number of seconds in Retry-After.",
            headers={"Retry-After": str(UPLOAD_RETRY_AFTER_SECONDS)},
        )
    try:
        # Read as it arrives and parsed and sealed in a thread, before the first statement,
        # so neither the event loop nor a write transaction waits for the upload.
        try:
            sealed = await _read_upload(
                request,
                principal.tenant_id,
                media_type,
                max_bytes=request.app.state.settings.max_batch_bytes,
            )
        except batch_io.UploadError as exc:
            raise BadRequest(str(exc)) from None
        # Inserting up to 50,000 rows takes a second or more: in a thread too (the session
        # is used by that thread alone meanwhile), still holding the slot, since the sealed
        # items stay in memory until they are stored.
        store = functools.partial(
            batches.create,
            session,
            principal,
            request.app.state.keys,
            sealed,
            idempotency_key=idempotency_key,
        )
        batch, created = await anyio.to_thread.run_sync(store, limiter=_upload_threads)
        del sealed, store
    finally:
        slots.release(principal.tenant_id)
    status = _status(session, batch)
    if created:  # after the response, so after the commit: this process's worker starts
        tasks.add_task(request.app.state.batch_bell.set)
    return Response(
        status.model_dump_json(),
        status_code=202 if created else 200,
        media_type="application/json",
        headers={"Location": f"/v1/batches/{batch.id}"},
    )


async def _read_upload(
    request: Request, tenant_id: uuid.UUID, media_type: str, *, max_bytes: int
) -> batches.SealedUpload:
    """The upload's body, read chunk by chunk from the connection and handed through a small
    queue to ``batches.read_upload`` in a thread: memory holds a few chunks, not the body.
    Past ``max_bytes`` it is a 413 (the body-limit middleware refuses it too)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=UPLOAD_QUEUE_CHUNKS)
    stop = threading.Event()

    def chunks() -> Iterator[bytes]:  # runs in the parsing thread
        while True:
            future = asyncio.run_coroutine_threadsafe(queue.get(), loop)
            while True:
                if stop.is_set():
                    future.cancel()
                    raise _UploadAborted
                try:
                    chunk = future.result(timeout=0.5)
                    break
                except concurrent.futures.TimeoutError:
                    continue
            if chunk is None:
                return
            yield chunk

    parsing = asyncio.ensure_future(
        anyio.to_thread.run_sync(
            batches.read_upload,
            request.app.state.keys,
            tenant_id,
            chunks(),
            media_type,
            limiter=_upload_threads,
        )
    )

    async def put(chunk: bytes | None) -> bool:
        """Queue a chunk; False when the parser has stopped (a refusal) instead."""
        putting = asyncio.ensure_future(queue.put(chunk))
        await asyncio.wait({putting, parsing}, return_when=asyncio.FIRST_COMPLETED)
        if putting.done():
            return True
        putting.cancel()
        return False

    try:
        received = 0
        pending: list[bytes] = []
        pending_bytes = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes:
                raise ContentTooLarge(f"The request body exceeds the limit of {max_bytes} bytes.")
            pending.append(chunk)
            pending_bytes += len(chunk)
            if pending_bytes >= UPLOAD_CHUNK_BYTES:  # fewer, larger hand-overs to the thread
                if not await put(b"".join(pending)):
                    break
                pending, pending_bytes = [], 0
        else:
            if pending:
                await put(b"".join(pending))
            await put(None)  # the end of the upload
        return await parsing
    finally:
        if not parsing.done():
            stop.set()
            with contextlib.suppress(Exception):
                await parsing


class _UploadAborted(Exception):
    """The request ended (too large, disconnected) while the thread was parsing it."""


@router.get(
    "/v1/batches/{batch_id}",
    response_model=BatchStatus,
    summary="A batch's state, counts, progress and timings",
    operation_id="read_batch",
)
async def read_batch(principal: Writer, session: ReadSession, batch_id: BatchId) -> BatchStatus:
    return _status(session, batches.get(session, principal, batch_id))


@router.post(
    "/v1/batches/{batch_id}/cancel",
    response_model=BatchStatus,
    summary="Cancel a batch",
    description="Pending items are cancelled; a chunk already being screened finishes.",
    operation_id="cancel_batch",
)
async def cancel_batch(principal: Writer, session: WriteSession, batch_id: BatchId) -> BatchStatus:
    batch = batches.cancel(session, principal, batch_id)
    session.flush()
    return _status(session, batch)


def _out(r: batches.ItemResult) -> ItemResultOut:
    return ItemResultOut(
        row=r.row,
        client_ref=r.client_ref,
        state=r.state,
        screening_id=r.screening_id,
        flag=r.flag,
        score=r.score,
        top_indicators=r.top_indicators,
        problems=[ItemProblem.model_validate(p) for p in r.problems],
    )


@router.get(
    "/v1/batches/{batch_id}/results",
    response_model=ResultPage,
    summary="A batch's results",
    description=(
        "Chosen by `Accept`: `application/json` (default; cursor-paginated), "
        "`application/x-ndjson` (every item, streamed) or `text/csv` (every item, streamed). "
        "Each item carries its row, client_ref, state, screening id, flag, score and top "
        "indicators, or its problems."
    ),
    responses={
        200: {
            "content": {"application/x-ndjson": {}, "text/csv": {}},
            "description": "The results in the format asked for",
        },
        406: problem_response("None of the formats in Accept is offered"),
    },
    operation_id="batch_results",
)
async def batch_results(
    request: Request,
    principal: Writer,
    session: ReadSession,
    batch_id: BatchId,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size for JSON (1-1000).")] = 200,
    cursor: Annotated[str | None, Query(max_length=6, pattern=r"^\d{1,6}$")] = None,
) -> Any:
    accept = request.headers.get("accept", "application/json")
    wanted = _negotiate(accept)
    batch = batches.get(session, principal, batch_id)  # 404 before any streaming starts
    keys = request.app.state.keys
    if wanted == "application/json":
        page = batches.results(session, keys, batch, after_row=int(cursor or 0), limit=limit)
        nxt = str(page[-1].row) if len(page) == limit else None
        return ResultPage(items=[_out(r) for r in page], next_cursor=nxt)
    db = request.app.state.db
    rows = batches.all_results(db, keys, principal, batch.id)
    if wanted == "application/x-ndjson":
        return StreamingResponse(_ndjson(rows), media_type="application/x-ndjson")
    return StreamingResponse(
        _csv(rows),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="batch-{batch.id}.csv"'},
    )


def _negotiate(accept: str) -> str:
    offered = [m.split(";")[0].strip().lower() for m in accept.split(",") if m.strip()]
    for media in offered:
        if media in RESULT_TYPES:
            return media
        if media in ("*/*", "application/*"):
            return "application/json"
    raise NotAcceptable("Ask for application/json, application/x-ndjson or text/csv.")


def _ndjson(rows: Iterator[batches.ItemResult]) -> Iterator[bytes]:
    lines: list[str] = []
    for r in rows:  # ItemResultOut's fields, without building a model per line
        item = dataclasses.asdict(r)
        item["screening_id"] = str(r.screening_id) if r.screening_id else None
        lines.append(json.dumps(item, ensure_ascii=False, separators=(",", ":")))
        if len(lines) >= 500:
            yield ("\n".join(lines) + "\n").encode()
            lines = []
    if lines:
        yield ("\n".join(lines) + "\n").encode()


def _cell(text: str) -> str:
    """A spreadsheet must not run a client_ref as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(rows: Iterator[batches.ItemResult]) -> Iterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_RESULT_COLUMNS)
    for r in rows:
        writer.writerow(
            [
                r.row,
                _cell(r.client_ref or ""),
                r.state,
                r.screening_id or "",
                r.flag or "",
                "" if r.score is None else r.score,
                ";".join(r.top_indicators),
                json.dumps(r.problems, ensure_ascii=False) if r.problems else "",
            ]
        )
        if out.tell() > 64 * 1024:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()
