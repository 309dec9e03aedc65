"""Read API over the active knowledge base (scope ``knowledge:read``).

Lists are ordered by id with opaque cursors; every response carries an ETag derived from the
release's content hash and the query, and a matching ``If-None-Match`` answers 304.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from app.api.deps import require
from app.api.problems import STANDARD_ERRORS
from app.auth import Principal, Scope
from app.errors import NotFound, Unprocessable
from app.kb.loader import DEFAULT_COUNTRY, KnowledgeBase
from app.kb.schema import Case, Country, Pattern, Provision, Source

# Full paths on every route (no router prefix): the route object then carries its template,
# which logs and metrics use.
router = APIRouter(tags=["knowledge"], responses=STANDARD_ERRORS)
P = "/v1/knowledge"
Reader = Annotated[Principal, require(Scope.KNOWLEDGE_READ)]
Limit = Annotated[int, Query(ge=1, le=200, description="Page size (1-200).")]
Cursor = Annotated[
    str | None,
    Query(max_length=200, description="The `next_cursor` of the previous page."),
]
T = TypeVar("T")
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified (the ETag matches If-None-Match)"}
}


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class KnowledgeInfo(BaseModel):
    version: str = Field(examples=["1.0.0"])
    sha256: str = Field(description="sha256 over the release's canonical content.")
    published: str
    notes: str
    counts: dict[str, int]


def _kb(request: Request) -> KnowledgeBase:
    kb: KnowledgeBase = request.app.state.releases.active()
    return kb


def _etag(request: Request, kb: KnowledgeBase) -> str:
    key = f"{kb.sha256}|{request.url.path}|{request.url.query}".encode()
    return '"' + hashlib.sha256(key).hexdigest()[:32] + '"'


def _conditional(request: Request, response: Response, kb: KnowledgeBase) -> Response | None:
    tag = _etag(request, kb)
    response.headers["ETag"] = tag
    response.headers["Cache-Control"] = "private, no-cache"
    candidates = {t.strip() for t in request.headers.get("if-none-match", "").split(",")}
    if tag in candidates or f"W/{tag}" in candidates or "*" in candidates:
        return Response(
            status_code=304, headers={"ETag": tag, "Cache-Control": "private, no-cache"}
        )
    return None


def _decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        return base64.urlsafe_b64decode(cursor.encode() + b"==").decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Unprocessable("The cursor is not valid.") from None


def _page(items: Sequence[T], key: Callable[[T], str], cursor: str | None, limit: int) -> Page[T]:
    after = _decode_cursor(cursor)
    ordered = sorted(items, key=key)
    if after is not None:
        ordered = [i for i in ordered if key(i) > after]
    chunk = ordered[:limit]
    more = len(ordered) > limit
    nxt = base64.urlsafe_b64encode(key(chunk[-1]).encode()).decode().rstrip("=") if more else None
    return Page[T](items=chunk, next_cursor=nxt)


def _listing(
    request: Request,
    response: Response,
    items: Sequence[T],
    key: Callable[[T], str],
    cursor: str | None,
    limit: int,
) -> Any:
    kb = _kb(request)
    return _conditional(request, response, kb) or _page(items, key, cursor, limit)


def _one(request: Request, response: Response, table: Mapping[str, T], key: str) -> Any:
    kb = _kb(request)
    if key not in table:
        raise NotFound()
    return _conditional(request, response, kb) or table[key]


@router.get(
    P,
    response_model=KnowledgeInfo,
    summary="The active release: version, hash, counts",
    responses=NOT_MODIFIED,
)
async def knowledge_info(request: Request, response: Response, _: Reader) -> Any:
    kb = _kb(request)
    if (hit := _conditional(request, response, kb)) is not None:
        return hit
    return KnowledgeInfo(
        version=kb.version,
        sha256=kb.sha256,
        published=kb.release.published,
        notes=kb.release.notes,
        counts=kb.counts(),
    )


@router.get(
    P + "/sources", response_model=Page[Source], summary="List sources", responses=NOT_MODIFIED
)
async def list_sources(
    request: Request, response: Response, _: Reader, limit: Limit = 50, cursor: Cursor = None
) -> Any:
    kb = _kb(request)
    return _listing(request, response, list(kb.sources.values()), lambda s: s.id, cursor, limit)


@router.get(
    P + "/sources/{source_id}",
    response_model=Source,
    summary="Read one source",
    responses=NOT_MODIFIED,
)
async def read_source(
    request: Request,
    response: Response,
    _: Reader,
    source_id: Annotated[str, Path(max_length=100, examples=["interpol-refugee-policy-2015"])],
) -> Any:
    return _one(request, response, _kb(request).sources, source_id)


@router.get(
    P + "/countries",
    response_model=Page[Country],
    summary="List country profiles (ZZ is the default profile)",
    responses=NOT_MODIFIED,
)
async def list_countries(
    request: Request, response: Response, _: Reader, limit: Limit = 50, cursor: Cursor = None
) -> Any:
    kb = _kb(request)
    return _listing(request, response, list(kb.countries.values()), lambda c: c.iso2, cursor, limit)


@router.get(
    P + "/countries/{iso2}",
    response_model=Country,
    responses=NOT_MODIFIED,
    summary="Read a country profile; an undocumented state answers with the default profile",
)
async def read_country(
    request: Request,
    response: Response,
    _: Reader,
    iso2: Annotated[str, Path(pattern=r"^[A-Za-z]{2}$", examples=["CN"])],
) -> Any:
    kb = _kb(request)
    return _conditional(request, response, kb) or kb.countries.get(
        iso2.upper(), kb.countries[DEFAULT_COUNTRY]
    )


@router.get(
    P + "/patterns",
    response_model=Page[Pattern],
    summary="List abuse patterns",
    responses=NOT_MODIFIED,
)
async def list_patterns(
    request: Request, response: Response, _: Reader, limit: Limit = 50, cursor: Cursor = None
) -> Any:
    kb = _kb(request)
    return _listing(request, response, list(kb.patterns.values()), lambda p: p.code, cursor, limit)


@router.get(
    P + "/patterns/{code}",
    response_model=Pattern,
    summary="Read one abuse pattern",
    responses=NOT_MODIFIED,
)
async def read_pattern(
    request: Request,
    response: Response,
    _: Reader,
    code: Annotated[str, Path(max_length=100, examples=["notice_against_recognised_refugee"])],
) -> Any:
    return _one(request, response, _kb(request).patterns, code)


@router.get(
    P + "/provisions",
    response_model=Page[Provision],
    responses=NOT_MODIFIED,
    summary="List legal provisions documented as used against critics or minorities",
)
async def list_provisions(
    request: Request,
    response: Response,
    _: Reader,
    limit: Limit = 50,
    cursor: Cursor = None,
    jurisdiction: Annotated[str | None, Query(pattern=r"^[A-Za-z]{2}$", examples=["RU"])] = None,
) -> Any:
    kb = _kb(request)
    items = [
        p
        for p in kb.provisions.values()
        if jurisdiction is None or p.jurisdiction == jurisdiction.upper()
    ]
    return _listing(request, response, items, lambda p: p.id, cursor, limit)


@router.get(
    P + "/provisions/{provision_id}",
    response_model=Provision,
    responses=NOT_MODIFIED,
    summary="Read one legal provision",
)
async def read_provision(
    request: Request,
    response: Response,
    _: Reader,
    provision_id: Annotated[str, Path(max_length=100)],
) -> Any:
    return _one(request, response, _kb(request).provisions, provision_id)


@router.get(
    P + "/cases",
    response_model=Page[Case],
    responses=NOT_MODIFIED,
    summary="List documented public cases",
)
async def list_cases(
    request: Request,
    response: Response,
    _: Reader,
    limit: Limit = 50,
    cursor: Cursor = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Za-z]{2}$", examples=["TR"])] = None,
    pattern: Annotated[str | None, Query(max_length=100)] = None,
) -> Any:
    kb = _kb(request)
    items = [
        c
        for c in kb.cases.values()
        if (country is None or c.country == country.upper())
        and (pattern is None or pattern in c.patterns)
    ]
    return _listing(request, response, items, lambda c: c.id, cursor, limit)


@router.get(
    P + "/cases/{case_id}",
    response_model=Case,
    responses=NOT_MODIFIED,
    summary="Read one documented case",
)
async def read_case(
    request: Request, response: Response, _: Reader, case_id: Annotated[str, Path(max_length=100)]
) -> Any:
    return _one(request, response, _kb(request).cases, case_id)
