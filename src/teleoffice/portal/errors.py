"""The one error shape of the REST API: `{"error": {"code", "message"}}`.

Every failure leaves through here, whether a handler raised `ApiError`, the
store refused a change (`StoreError`), FastAPI rejected the input
(`RequestValidationError`) or routing failed (`HTTPException`). Unexpected
exceptions become a bare 500: the traceback goes to the log, never to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from teleoffice.store.repos import Conflict, InvalidInput, NotFound, StoreError

log = logging.getLogger("teleoffice.portal")

# Most validation problems shown in one message; the rest are counted.
MAX_REPORTED_PROBLEMS = 5

# Codes for statuses that reach us without one of their own (routing, 405...).
_CODES_BY_STATUS: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """A failure the client should see as it is: status, machine code, message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def unauthenticated(message: str = "log in first") -> ApiError:
    # RFC 6750 section 3: a 401 names the scheme the client should use.
    return ApiError(401, "unauthenticated", message, headers={"WWW-Authenticate": "Bearer"})


def forbidden(message: str, code: str = "forbidden") -> ApiError:
    return ApiError(403, code, message)


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    """What every failed request returns (documented in OpenAPI)."""

    error: ErrorBody


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _status_code(status: int) -> str:
    return _CODES_BY_STATUS.get(status, "error")


def describe_validation(errors: Sequence[Any]) -> str:
    """One readable line for pydantic's error list, naming fields but never
    echoing the values (they may be passwords)."""
    parts: list[str] = []
    for err in errors[:MAX_REPORTED_PROBLEMS]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        where = ".".join(loc)
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    more = len(errors) - MAX_REPORTED_PROBLEMS
    if more > 0:
        parts.append(f"and {more} more problem(s)")
    return "; ".join(parts) or "invalid input"


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    message = detail or HTTPStatus(exc.status_code).phrase
    return error_response(exc.status_code, _status_code(exc.status_code), message, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "invalid_input", describe_validation(exc.errors()))


def store_error_status(exc: StoreError) -> tuple[int, str]:
    """The HTTP status and code for an error the store raised on purpose."""
    if isinstance(exc, NotFound):
        return 404, "not_found"
    if isinstance(exc, Conflict):
        return 409, "conflict"
    if isinstance(exc, InvalidInput):
        return 422, "invalid_input"
    return 422, "invalid_input"


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StoreError)
    status, code = store_error_status(exc)
    return error_response(status, code, str(exc))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The server logs the traceback (Starlette re-raises after answering); this
    # line only ties it to the request.
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return error_response(500, "internal_error", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of `app` use the JSON error shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(Exception, _unexpected)


# For `responses=` in route declarations: the error shape in OpenAPI.
def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ErrorOut, "description": HTTPStatus(status).phrase} for status in statuses
    }
