"""``/v1/screenings``: screen, read, list and erase."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from app import rescreen, screenings
from app.api.deps import ReadSession, WriteSession, off_loop, require
from app.api.examples import SCREENING_EXAMPLES
from app.api.problems import STANDARD_ERRORS, problem_response
from app.auth import Principal, Scope
from app.engine import ScreeningInput, ScreeningResult
from app.engine.result import Flag
from app.errors import NotFound
from app.kb.loader import KnowledgeBase
from app.pagination import UtcDateTime
from app.releases import UnknownRelease

router = APIRouter(tags=["screenings"], responses=STANDARD_ERRORS)
Writer = Annotated[Principal, require(Scope.SCREENINGS_WRITE)]
Reader = Annotated[Principal, require(Scope.SCREENINGS_READ)]
ScreeningId = Annotated[uuid.UUID, Path(description="The screening's id.")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=255,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Retrying with the same key and body returns the first result instead of "
        "screening twice; the same key with another body is a 422. Keys are per tenant and "
        "ignored with `store=false`.",
    ),
]


class Screening(ScreeningResult):
    """A screening's result with its identity."""

    id: uuid.UUID | None = Field(description="Null when `store=false`.")
    created_at: datetime


class ScreeningSummary(BaseModel):
    id: uuid.UUID
    created_at: datetime
    flag: Flag
    score: int
    issuing_country: str | None
    knowledge_base_version: str


class ScreeningPage(BaseModel):
    items: list[ScreeningSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


def _json(body: bytes, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=body, status_code=status, media_type="application/json", headers=headers
    )


@router.post(
    "/v1/screenings",
    response_model=Screening,
    status_code=201,
    summary="Screen a person and/or a notice",
    description=(
        "Scores the input against the active knowledge base and returns the flag, the fired "
        "indicators and counter-indicators with their evidence, the challenge grounds, missing "
        "information, similar documented cases and every cited source. Stored under your "
        "tenant (201 with Location) unless `store=false` (200, nothing stored). **A screening "
        "aid, not legal advice.**"
    ),
    responses={
        201: {
            "links": {
                "ReadScreening": {
                    "operationId": "read_screening",
                    "parameters": {"screening_id": "$response.body#/id"},
                },
                "EraseScreening": {
                    "operationId": "erase_screening",
                    "parameters": {"screening_id": "$response.body#/id"},
                },
            }
        },
        200: {
            "description": "Screened without storing (`store=false`), or an "
            "idempotent replay of an earlier request",
            "model": Screening,
        },
        409: {"description": "A request with the same Idempotency-Key is in progress"},
    },
    operation_id="create_screening",
)
async def create_screening(
    request: Request,
    principal: Writer,
    session: WriteSession,
    body: Annotated[ScreeningInput, Body(openapi_examples=SCREENING_EXAMPLES)],
    idempotency_key: IdempotencyKey = None,
    store: Annotated[bool, Query(description="false: return the result, store nothing.")] = True,
) -> Any:
    kb: KnowledgeBase = request.app.state.releases.active()
    # The engine's CPU work, in the bounded pool and before the first statement, so the loop
    # keeps serving and no transaction is held across the await.
    computed = await off_loop(screenings.compute, body, kb)
    stored, created = screenings.create(
        session,
        principal,
        body,
        kb,
        request.app.state.keys,
        idempotency_key=idempotency_key,
        store=store,
        computed=computed,
    )
    if stored.id is None:
        return _json(stored.to_json(), 200)
    headers = {"Location": f"/v1/screenings/{stored.id}"}
    return _json(stored.to_json(), 201 if created else 200, headers)


@router.get(
    "/v1/screenings/{screening_id}",
    response_model=Screening,
    summary="Read a screening",
    responses={
        410: problem_response("The stored data cannot be decrypted (erased key or tampered row)")
    },
    operation_id="read_screening",
)
async def read_screening(
    request: Request, principal: Reader, session: ReadSession, screening_id: ScreeningId
) -> Any:
    stored = screenings.get(session, principal, request.app.state.keys, screening_id)
    return _json(stored.to_json(), 200)


@router.get(
    "/v1/screenings",
    response_model=ScreeningPage,
    summary="List your screenings",
    description="Newest first, with cursor pagination and filters.",
    operation_id="list_screenings",
)
async def list_screenings(
    principal: Reader,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size (1-200).")] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    flag: Flag | None = None,
    issuing_country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    created_after: Annotated[UtcDateTime | None, Query(description="Inclusive, ISO 8601.")] = None,
    created_before: Annotated[UtcDateTime | None, Query(description="Exclusive, ISO 8601.")] = None,
) -> ScreeningPage:
    filters = screenings.ListFilters(
        flag=flag.value if flag else None,
        issuing_country=issuing_country,
        created_after=created_after,
        created_before=created_before,
    )
    rows, nxt = screenings.list_page(session, principal, filters, limit=limit, cursor=cursor)
    items = [
        ScreeningSummary(
            id=r.id,
            created_at=r.created_at,
            flag=Flag(r.flag),
            score=r.score,
            issuing_country=r.issuing_country,
            knowledge_base_version=r.kb_version,
        )
        for r in rows
    ]
    return ScreeningPage(items=items, next_cursor=nxt)


@router.delete(
    "/v1/screenings/{screening_id}",
    status_code=204,
    response_class=Response,
    summary="Erase a screening",
    description="Deletes the input and the result. An audit entry without personal "
    "data records that it existed and was erased.",
    operation_id="erase_screening",
)
async def erase_screening(
    principal: Writer, session: WriteSession, screening_id: ScreeningId
) -> Response:
    screenings.erase(session, principal, screening_id)
    return Response(status_code=204)


class Rescreened(BaseModel):
    screening: Screening = Field(description="The new result.")
    diff: rescreen.Diff = Field(description="What changed against the stored result.")
    stored: bool = Field(
        description="True when the new result replaced the stored one (the active release); "
        "false for a reproduction with `knowledge_base_version`."
    )


@router.post(
    "/v1/screenings/{screening_id}/rescreen",
    response_model=Rescreened,
    summary="Re-screen a stored screening",
    description=(
        "Screens the stored input again and returns the new result with a diff against the "
        "stored one (flag and score before and after; indicators, counter-indicators, "
        "challenge grounds and sources added and removed). Against the active release the new "
        "result replaces the stored one (audited; a changed flag sends `screening.changed`). "
        "With `knowledge_base_version`, the input is screened against that stored release and "
        "nothing is stored: this reproduces an earlier result."
    ),
    responses={
        404: problem_response("No such screening, or no release with that version"),
        410: problem_response("The stored data cannot be decrypted (erased key or tampered row)"),
    },
    operation_id="rescreen_screening",
)
async def rescreen_screening(
    request: Request,
    principal: Writer,
    session: WriteSession,
    screening_id: ScreeningId,
    knowledge_base_version: Annotated[
        str | None,
        Query(
            pattern=r"^\d+\.\d+\.\d+$",
            max_length=32,
            description="Screen against this stored release instead of the active one, "
            "without storing.",
        ),
    ] = None,
) -> Any:
    releases = request.app.state.releases
    release = None
    if knowledge_base_version is not None:
        # Loading a release not in this process's cache is up to a second of CPU: in a thread,
        # before the handler's first statement, so the event loop keeps serving.
        try:
            release = await run_in_threadpool(releases.get, knowledge_base_version)
        except UnknownRelease:
            raise NotFound("No knowledge-base release has this version.") from None
    stored, diff, replaced = rescreen.rescreen(
        session,
        principal,
        request.app.state.keys,
        releases,
        screening_id,
        version=knowledge_base_version,
        release=release,
    )
    body = (
        b'{"screening":'
        + stored.to_json()
        + b',"diff":'
        + diff.model_dump_json().encode()
        + b',"stored":'
        + (b"true" if replaced else b"false")
        + b"}"
    )
    return _json(body, 200)
