"""The error responses every protected route documents (all problem+json)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Problem(BaseModel):
    """RFC 9457 problem details. Never echoes submitted values."""

    type: str = Field(examples=["https://notice-screening.readthedocs.io/problems/not-found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str | None = None
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="For 422: where and why, without the submitted values."
    )


def problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "model": Problem,
        "content": {"application/problem+json": {}},
    }


STANDARD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: problem_response("Malformed request (for example a body that is not JSON)"),
    401: problem_response("Missing, invalid or expired access token"),
    403: problem_response("The token lacks a required scope"),
    404: problem_response("Not found (also for another tenant's objects)"),
    413: problem_response("Request body too large"),
    422: problem_response("The request does not match the schema"),
    429: problem_response("Too many requests"),
    503: problem_response("The database is busy; retry after `Retry-After` seconds"),
}
