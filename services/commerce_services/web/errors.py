"""One error shape for every HTTP API: {"error": {"code", "message", "details"}}.

Client mistakes get 400/401/403/404/409/413/422/429 with a stable machine-readable code. A
database that is unreachable, restarting or out of connections is a 503 `dependency_unavailable`
with Retry-After, whichever endpoint met it (told apart in db/outages.py, from the drivers' errors);
every 503 carries Retry-After. Anything else unexpected is a 500 with a generic message, logged
with its stack trace, never sent to the client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pymongo.errors import PyMongoError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from commerce_services.db.outages import is_outage

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
}

# Seconds a client should wait before retrying a 503; a restarting database is back in seconds.
RETRY_AFTER_S = 2


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorBody(BaseModel):
    error: ErrorDetail


# Every operation's OpenAPI lists these, so clients (and the schema fuzzer) know the failures.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "A client error; `code` says which"},
    "5XX": {"model": ErrorBody, "description": "A server error"},
    503: {
        "model": ErrorBody,
        "description": "A dependency is unavailable: retry after Retry-After seconds",
        "headers": {
            "Retry-After": {
                "description": "seconds",
                "required": True,
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        },
    },
}


class ApiError(Exception):
    """A client-facing failure; raise it from handlers instead of HTTPException."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        # e.g. WWW-Authenticate on a 401, Retry-After on a 429
        self.headers = headers or {}


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    answered = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else {}
    return JSONResponse(
        status_code=status,
        content={"error": {"code": code, "message": message, "details": details or {}}},
        headers={**answered, **(headers or {})},
    )


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Field locations and reasons only: the rejected input is not echoed back.
    problems = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    if any(p["type"] == "json_invalid" for p in problems):
        return error_response(400, "malformed_json", "the request body is not valid JSON")
    return error_response(
        422, "validation_failed", "the request is not valid", {"errors": problems}
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    if is_outage(exc):
        # Not a bug: no stack trace, one line naming what failed.
        log.warning(
            "dependency unavailable on %s %s: %s: %s",
            request.method,
            request.url.path,
            type(exc).__name__,
            exc,
        )
        return error_response(
            503,
            "dependency_unavailable",
            "a database this service needs is unavailable; retry later",
        )
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "an internal error occurred")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # The drivers' errors are answered inside the app, like the client errors above; the
    # catch-all below would answer too, but its middleware re-raises to the server afterwards.
    for driver_error in (SQLAlchemyError, PyMongoError, ConnectionError, TimeoutError):
        app.add_exception_handler(driver_error, _unexpected)
    app.add_exception_handler(Exception, _unexpected)
