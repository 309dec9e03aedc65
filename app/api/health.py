"""Liveness, readiness and metrics. Public: they reveal nothing about tenants or data."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from app import migrate
from app.errors import problem

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    database: str
    migrations: str
    knowledge_base: str


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Ready,
    summary="Readiness: database reachable, migrations at head, knowledge base loaded",
    responses={503: {"description": "Not ready", "content": {"application/problem+json": {}}}},
)
def readyz(request: Request) -> Any:
    state = request.app.state
    try:
        current = migrate.current_revision(state.db.writer)
    except Exception:  # any driver error means "not reachable"; its text may hold the URL
        return problem(503, detail="The database is not reachable.", request=request)
    if current != state.migration_head:
        return problem(
            503, detail="The database schema is not at the latest migration.", request=request
        )
    return Ready(
        status="ok",
        database="ok",
        migrations=str(current),
        knowledge_base=state.releases.active().version,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics (route templates only, never ids or personal data)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
