"""Read and delete the caller's own tenant's API clients (scope ``tenants:admin``). Secrets
never leave the service after creation; clients are created and rotated with the CLI."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel
from sqlmodel import col

from app import revocation
from app.api.deps import ReadSession, WriteSession, require
from app.api.problems import STANDARD_ERRORS, problem_response
from app.auth import Principal, Scope
from app.errors import Conflict
from app.models import Client
from app.tenancy import get_owned, owned

router = APIRouter(tags=["tenants"], responses=STANDARD_ERRORS)
Admin = Annotated[Principal, require(Scope.TENANTS_ADMIN)]


class ClientPublic(BaseModel):
    id: uuid.UUID
    client_id: str
    name: str
    scopes: list[str]
    disabled: bool
    created_at: datetime
    secret_rotated_at: datetime


class ClientList(BaseModel):
    items: list[ClientPublic]


def _public(c: Client) -> ClientPublic:
    return ClientPublic(
        id=c.id,
        client_id=c.client_id,
        name=c.name,
        scopes=list(c.scopes),
        disabled=c.disabled,
        created_at=c.created_at,
        secret_rotated_at=c.secret_rotated_at,
    )


@router.get(
    "/v1/clients",
    response_model=ClientList,
    summary="List your tenant's API clients",
    responses={
        200: {
            "links": {
                "ReadClient": {
                    "operationRef": "#/paths/~1v1~1clients~1{id}/get",
                    "parameters": {"id": "$response.body#/items/0/id"},
                }
            }
        }
    },
)
async def list_clients(principal: Admin, session: ReadSession) -> ClientList:
    rows = session.exec(owned(Client, principal.tenant_id).order_by(col(Client.created_at))).all()
    return ClientList(items=[_public(c) for c in rows])


@router.get(
    "/v1/clients/{id}", response_model=ClientPublic, summary="Read one of your tenant's API clients"
)
async def read_client(
    principal: Admin,
    session: ReadSession,
    id: Annotated[uuid.UUID, Path(description="The client's id (not its client_id).")],
) -> ClientPublic:
    return _public(get_owned(session, Client, id, principal.tenant_id))


@router.delete(
    "/v1/clients/{id}",
    status_code=204,
    summary="Delete one of your tenant's API clients",
    description="The client can no longer get tokens, and the tokens it holds are refused "
    "within seconds on every server process. Audited as `client.deleted`. A client cannot "
    "delete itself (409): another admin client, or `python -m app delete-client`, can.",
    responses={409: problem_response("The client named is the caller")},
)
async def delete_client(
    request: Request,
    principal: Admin,
    session: WriteSession,
    id: Annotated[uuid.UUID, Path(description="The client's id (not its client_id).")],
) -> Response:
    client = get_owned(session, Client, id, principal.tenant_id)
    client_id = client.client_id
    if client_id == principal.client_id:
        raise Conflict("A client cannot delete itself.")
    revocation.delete(session, client, actor=principal.client_id)
    request.app.state.revocations.forget(client_id)
    return Response(status_code=204)
