"""``/v1/webhooks``: signed event notifications to the tenant's endpoints (scope
``tenants:admin``). The signing secret is shown once, in the creation's response."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from app import webhooks
from app.api.deps import ReadSession, WriteSession, require
from app.api.problems import STANDARD_ERRORS
from app.auth import Principal, Scope
from app.models import Webhook as WebhookRow
from app.models import WebhookDelivery
from app.webhooks import Event, State

router = APIRouter(tags=["tenants"], responses=STANDARD_ERRORS)
Admin = Annotated[Principal, require(Scope.TENANTS_ADMIN)]
WebhookId = Annotated[uuid.UUID, Path(description="The webhook's id.")]
DeliveryId = Annotated[uuid.UUID, Path(description="The delivery's id.")]

EVENTS_DOC = (
    "`screening.created`: a screening was stored (its id, flag, score and time). "
    "`screening.changed`: a re-screen changed a stored screening's flag (its id, the batch "
    "that re-screened it if any, and the diff: flags, scores, versions, indicator, ground and "
    "source codes). "
    "`batch.completed`: a batch finished (its id and counts). Payloads never hold personal data."
)
SIGNING_DOC = (
    "Each delivery is a POST of `{type, timestamp, data}` signed per Standard Webhooks: headers "
    "`webhook-id` (the delivery's id, the same on every retry: use it to drop duplicates), "
    "`webhook-timestamp` and `webhook-signature` (`v1,` + base64 HMAC-SHA256 of "
    "`id.timestamp.body` with the secret). Reject timestamps more than 5 minutes away. "
    "A non-2xx answer, a timeout or a refused destination is retried after 5 s, 5 min, 30 min, "
    "2 h, 5 h, 10 h and 10 h, then the delivery is `failed`."
)


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=webhooks.MAX_URL_LENGTH,
        description="An http or https URL on a public address.",
        examples=["https://ngo.example/hooks/screening"],
    )
    events: list[Event] = Field(
        min_length=1, max_length=len(Event), description=EVENTS_DOC, examples=[["batch.completed"]]
    )


class WebhookPublic(BaseModel):
    id: uuid.UUID
    url: str
    events: list[Event]
    disabled: bool
    created_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(
        description="The signing secret (`whsec_` + base64). Shown only now: store it.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class WebhookList(BaseModel):
    items: list[WebhookPublic]


class Delivery(BaseModel):
    id: uuid.UUID = Field(description="Also the `webhook-id` header of every attempt.")
    webhook_id: uuid.UUID
    event: Event
    state: State
    attempts: int
    next_attempt_at: datetime
    last_status: int | None = Field(description="The receiver's last HTTP status, if any.")
    last_error: str | None = Field(description="Why the last attempt failed, if it did.")
    created_at: datetime
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


def _public(w: WebhookRow) -> WebhookPublic:
    return WebhookPublic(
        id=w.id,
        url=w.url,
        events=[Event(e) for e in w.events],
        disabled=w.disabled,
        created_at=w.created_at,
    )


def _delivery(d: WebhookDelivery) -> Delivery:
    return Delivery(
        id=d.id,
        webhook_id=d.webhook_id,
        event=Event(d.event),
        state=State(d.state),
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at,
        last_status=d.last_status,
        last_error=d.last_error,
        created_at=d.created_at,
        delivered_at=d.delivered_at,
    )


def _json(model: BaseModel, status: int, location: str) -> Response:
    return Response(
        content=model.model_dump_json(),
        status_code=status,
        media_type="application/json",
        headers={"Location": location},
    )


@router.post(
    "/v1/webhooks",
    response_model=WebhookCreated,
    status_code=201,
    summary="Create a webhook",
    description=SIGNING_DOC,
    responses={
        201: {
            "links": {
                "ReadWebhook": {
                    "operationId": "read_webhook",
                    "parameters": {"webhook_id": "$response.body#/id"},
                },
                "DeleteWebhook": {
                    "operationId": "delete_webhook",
                    "parameters": {"webhook_id": "$response.body#/id"},
                },
            }
        }
    },
    operation_id="create_webhook",
)
async def create_webhook(
    request: Request, principal: Admin, session: WriteSession, body: WebhookCreate
) -> Any:
    row, secret = webhooks.create(
        session,
        principal,
        request.app.state.keys,
        body.url,
        body.events,
        allow_private=request.app.state.settings.webhook_allow_private,
    )
    created = WebhookCreated(**_public(row).model_dump(), secret=secret)
    return _json(created, 201, f"/v1/webhooks/{row.id}")


@router.get(
    "/v1/webhooks",
    response_model=WebhookList,
    summary="List your tenant's webhooks",
    operation_id="list_webhooks",
)
async def list_webhooks(principal: Admin, session: ReadSession) -> WebhookList:
    return WebhookList(items=[_public(w) for w in webhooks.list_all(session, principal)])


@router.get(
    "/v1/webhooks/{webhook_id}",
    response_model=WebhookPublic,
    summary="Read a webhook",
    operation_id="read_webhook",
)
async def read_webhook(
    principal: Admin, session: ReadSession, webhook_id: WebhookId
) -> WebhookPublic:
    return _public(webhooks.get(session, principal, webhook_id))


@router.delete(
    "/v1/webhooks/{webhook_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a webhook",
    description="Deletes the webhook, its deliveries and its signing secret.",
    operation_id="delete_webhook",
)
async def delete_webhook(
    principal: Admin, session: WriteSession, webhook_id: WebhookId
) -> Response:
    webhooks.delete_webhook(session, principal, webhook_id)
    return Response(status_code=204)


@router.get(
    "/v1/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    summary="List a webhook's deliveries",
    description="Newest first, with cursor pagination.",
    operation_id="list_webhook_deliveries",
)
async def list_deliveries(
    principal: Admin,
    session: ReadSession,
    webhook_id: WebhookId,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size (1-200).")] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> DeliveryPage:
    rows, nxt = webhooks.list_deliveries(session, principal, webhook_id, limit=limit, cursor=cursor)
    return DeliveryPage(items=[_delivery(d) for d in rows], next_cursor=nxt)


@router.post(
    "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/resend",
    response_model=Delivery,
    status_code=202,
    summary="Send a delivery again",
    description="Queues a new delivery (a new `webhook-id`) with the same event and payload.",
    operation_id="resend_webhook_delivery",
)
async def resend_delivery(
    principal: Admin, session: WriteSession, webhook_id: WebhookId, delivery_id: DeliveryId
) -> Any:
    row = webhooks.resend(session, principal, webhook_id, delivery_id)
    return _json(_delivery(row), 202, f"/v1/webhooks/{webhook_id}/deliveries")
