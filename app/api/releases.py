"""``/v1/knowledge/releases``: upload, list and activate knowledge-base releases."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from app import batches, releases
from app.api.deps import ReadSession, WriteSession, require
from app.api.problems import STANDARD_ERRORS
from app.auth import Principal, Scope
from app.kb.loader import MAX_FILES
from app.models import KnowledgeRelease

router = APIRouter(tags=["knowledge"], responses=STANDARD_ERRORS)
Reader = Annotated[Principal, require(Scope.KNOWLEDGE_READ)]
Admin = Annotated[Principal, require(Scope.KNOWLEDGE_ADMIN)]
Version = Annotated[
    str, Path(pattern=r"^\d+\.\d+\.\d+$", max_length=32, description="The release's version.")
]
P = "/v1/knowledge/releases"


class ReleaseUpload(BaseModel):
    """A release's data files by relative path (``release.yaml``, ``sources/asia.yaml``, ...),
    each holding the parsed content of the YAML file. ``python -m app kb bundle DIR`` writes
    one from a release directory."""

    model_config = ConfigDict(extra="forbid")

    files: dict[str, Any] = Field(max_length=MAX_FILES)


class ReleaseInfo(BaseModel):
    version: str = Field(examples=["1.7.0"])
    sha256: str = Field(description="sha256 over the release's canonical content.")
    published: str
    uploaded_at: datetime
    activated_at: datetime | None = Field(description="When it was last activated.")
    active: bool = Field(description="Whether screenings use this release now.")


class ReleaseList(BaseModel):
    items: list[ReleaseInfo]


def _active_version(request: Request, session: ReadSession | WriteSession) -> str:
    active = releases.active_version(session)
    return active or request.app.state.releases.builtin.version


def _info(row: KnowledgeRelease, active: str) -> ReleaseInfo:
    return ReleaseInfo(
        version=row.version,
        sha256=row.sha256,
        published=row.published,
        uploaded_at=row.uploaded_at,
        activated_at=row.activated_at,
        active=row.version == active,
    )


@router.post(
    P,
    response_model=ReleaseInfo,
    status_code=201,
    summary="Upload a knowledge-base release",
    description=(
        "Validates the release exactly as the built-in data is validated (schema, references, "
        "every source cited) and stores it, inactive. Uploading the same version with the same "
        "content again answers 200; with other content, 409: a version always means one "
        "content. Invalid releases are refused with a 422 naming the file and record."
    ),
    responses={200: {"description": "This release was already stored", "model": ReleaseInfo}},
    operation_id="upload_release",
)
async def upload_release(
    request: Request,
    response: Response,
    principal: Admin,
    session: WriteSession,
    body: ReleaseUpload,
) -> ReleaseInfo:
    uploaded = releases.upload(session, principal, body.files)
    response.status_code = 201 if uploaded.created else 200
    response.headers["Location"] = f"{P}/{uploaded.release.version}"
    return _info(uploaded.release, _active_version(request, session))


@router.get(
    P, response_model=ReleaseList, summary="List the stored releases", operation_id="list_releases"
)
async def list_releases(request: Request, _: Reader, session: ReadSession) -> ReleaseList:
    active = _active_version(request, session)
    rows = sorted(
        releases.list_all(session),
        key=lambda r: tuple(int(n) for n in r.version.split(".")),
        reverse=True,
    )
    return ReleaseList(items=[_info(r, active) for r in rows])


@router.get(
    P + "/{version}",
    response_model=ReleaseInfo,
    summary="Read a release's metadata",
    operation_id="read_release",
)
async def read_release(
    request: Request, _: Reader, session: ReadSession, version: Version
) -> ReleaseInfo:
    return _info(releases.get(session, version), _active_version(request, session))


@router.get(
    P + "/{version}/bundle",
    response_model=ReleaseUpload,
    summary="Download a release's files",
    description="The release as uploaded (the same shape as the upload), to reproduce old "
    "results or to start the next release from.",
    operation_id="read_release_bundle",
)
async def read_release_bundle(_: Reader, session: ReadSession, version: Version) -> Response:
    row = releases.get(session, version)
    return Response(
        content=releases.gunzip(row.bundle),
        media_type="application/json",
        headers={"ETag": f'"{row.sha256[:32]}"'},
    )


@router.post(
    P + "/{version}/activate",
    response_model=ReleaseInfo,
    summary="Activate a release",
    description=(
        "New screenings use this release from now on: this process at once, every other API "
        "process and batch worker within `KB_REFRESH_SECONDS` (2 s by default), without a "
        "restart. Activating an older release rolls back. Stored screenings of tenants that "
        "opted in (`rescreen_on_release` at `/v1/tenant`) are re-screened in the background, "
        "one batch per tenant; each screening whose flag changes sends a `screening.changed` "
        "webhook with the diff."
    ),
    operation_id="activate_release",
)
async def activate_release(
    request: Request,
    principal: Admin,
    session: WriteSession,
    tasks: BackgroundTasks,
    version: Version,
) -> ReleaseInfo:
    row = releases.activate(session, principal, version)
    batches.schedule_rescreens(session, row.version, row.sha256)
    # After the response, so after the commit: this process follows at once.
    tasks.add_task(request.app.state.releases.refresh)
    tasks.add_task(request.app.state.batch_bell.set)  # re-screens to do, if any
    return _info(row, row.version)
