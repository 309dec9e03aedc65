"""Typed errors, rendered once as RFC 9457 problem+json.

No handler echoes submitted values: validation problems name the field and the rule, never the
input, because inputs hold special-category personal data.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://notice-screening.readthedocs.io/problems/"
log = logging.getLogger("app.errors")

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class AppError(Exception):
    """Base of every error the service reports on purpose."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or _TITLES.get(self.status, "Error"))
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class BadRequest(AppError):
    status, slug = 400, "bad-request"


class Unauthorized(AppError):
    status, slug = 401, "unauthorized"


class Forbidden(AppError):
    status, slug = 403, "forbidden"


class NotFound(AppError):
    status, slug = 404, "not-found"


class UnsupportedMediaType(AppError):
    status, slug = 415, "unsupported-media-type"


class NotAcceptable(AppError):
    status, slug = 406, "not-acceptable"


class Conflict(AppError):
    status, slug = 409, "conflict"


class Gone(AppError):
    status, slug = 410, "gone"


class Unprocessable(AppError):
    status, slug = 422, "validation"


def idempotency_key_reused(what: str) -> Unprocessable:
    """The 422 for an Idempotency-Key sent again with another ``what`` (body, upload)."""
    return Unprocessable(
        f"This Idempotency-Key was used with a different {what}.",
        extra={
            "errors": [
                {
                    "loc": ["header", "Idempotency-Key"],
                    "msg": f"Key reused with a different {what}",
                    "type": "idempotency",
                }
            ]
        },
    )


class TooManyRequests(AppError):
    status, slug = 429, "rate-limited"


class ContentTooLarge(AppError):
    status, slug = 413, "content-too-large"


class ServiceUnavailable(AppError):
    status, slug = 503, "unavailable"


def problem(
    status: int,
    *,
    slug: str | None = None,
    detail: str | None = None,
    request: Request | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + (slug or _slug_for(status)),
        "title": _TITLES.get(status, "Error"),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if request is not None:
        rid = request.scope.get("state", {}).get("request_id")
        if rid:
            body["request_id"] = rid
    if extra:
        body.update(extra)
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON
    )


def _slug_for(status: int) -> str:
    return {
        400: "bad-request",
        401: "unauthorized",
        403: "forbidden",
        404: "not-found",
        405: "method-not-allowed",
        406: "not-acceptable",
        409: "conflict",
        413: "content-too-large",
        415: "unsupported-media-type",
        422: "validation",
        429: "rate-limited",
        503: "unavailable",
    }.get(status, "internal")


# Pydantic error types whose messages state the rule and never quote the input.
_SAFE_MESSAGES = frozenset(
    {
        "missing",
        "extra_forbidden",
        "string_type",
        "string_too_short",
        "string_too_long",
        "string_pattern_mismatch",
        "int_type",
        "int_parsing",
        "float_type",
        "float_parsing",
        "bool_type",
        "bool_parsing",
        "list_type",
        "dict_type",
        "model_type",
        "model_attributes_type",
        "too_short",
        "too_long",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "uuid_type",
        "json_invalid",
        "json_type",
        "date_type",
        "datetime_type",
        "url_type",
        "url_scheme",
        "none_required",
    }
)


UNKNOWN_FIELD = "(unknown field)"


def safe_loc(loc: Sequence[Any], kind: str) -> list[str]:
    """Where the problem is, without a key name the client chose: an unknown field's name is
    submitted data (it can be a name or a date of birth) and becomes ``(unknown field)``."""
    parts = [str(p) for p in loc]
    if kind == "extra_forbidden" and parts:
        parts[-1] = UNKNOWN_FIELD
    return parts


def sanitise_validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Keep where and why; drop the submitted input, key names and anything derived from it."""
    out = []
    for err in errors:
        kind = str(err.get("type", "value_error"))
        loc = safe_loc(err.get("loc", ()), kind)
        ctx = err.get("ctx") or {}
        if kind in _SAFE_MESSAGES:
            msg = str(err.get("msg", "Invalid value"))
        elif kind in {"literal_error", "enum"}:
            msg = "Input should be " + str(ctx.get("expected", "one of the documented values"))
        else:
            # Other messages (value errors, UUID and date parsing) can quote the input.
            msg = "Invalid value"
        out.append({"loc": loc, "msg": msg, "type": kind})
    return out


def install(app: FastAPI) -> None:
    async def app_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return problem(
            exc.status,
            slug=exc.slug,
            detail=exc.detail,
            request=request,
            headers=exc.headers,
            extra=exc.extra,
        )

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = sanitise_validation_errors(exc.errors())
        if any(e["type"] == "json_invalid" for e in errors):
            return problem(400, detail="The body is not valid JSON.", request=request)
        return problem(
            422,
            detail="The request does not match the schema.",
            request=request,
            extra={"errors": errors},
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if exc.status_code in (401, 403, 405, 406, 413, 415) else None
        return problem(
            exc.status_code,
            detail=detail if isinstance(detail, str) else None,
            request=request,
            headers=exc.headers,
        )

    async def pool_exhausted(request: Request, exc: Exception) -> JSONResponse:
        # Every pooled database connection stayed busy for the pool timeout (about a second):
        # tell the client to come back rather than queue it behind the others.
        log.warning("database pool exhausted", extra={"error_type": type(exc).__name__})
        return problem(
            503,
            detail="The service is busy; retry after the number of seconds in Retry-After.",
            request=request,
            headers={"Retry-After": "1"},
        )

    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        # The message can quote data (driver errors do); log the type and where it was raised.
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
        log.error("unhandled error", extra={"error_type": type(exc).__name__, "where": where})
        return problem(500, request=request)

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(PoolTimeout, pool_exhausted)
    app.add_exception_handler(Exception, unhandled)
