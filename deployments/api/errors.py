"""Exception handlers: every failure becomes a JSON `ErrorResponse` with the right status."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from deployments.api.schemas import ErrorResponse, FieldError, ValidationErrorResponse
from utils.errors import (
    AuthenticationError,
    ForbiddenError,
    GuardRefusalError,
    IndexNotReadyError,
    InputError,
    NotFoundError,
    OverloadedError,
    RateLimitedError,
    RequestRejectedError,
    StoreUnavailableError,
    UnavailableError,
)
from utils.logs import request_id_var


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, reason: str = ""
) -> JSONResponse:
    """A JSON error body with the request id (and a guard's reason code)."""
    body = ErrorResponse(message=message, request_id=request_id_var.get(), reason=reason)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _field_name(loc: tuple[object, ...] | list[object]) -> str:
    """`query.k` -> `k`: drop where the field came from (body, query string, header)."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    broken = [e for e in errors if e.get("type") == "json_invalid"]
    if broken:
        where = broken[0].get("ctx", {}).get("error", "")
        return error_response(400, f"the request body is not valid JSON: {where}".rstrip(": "))
    fields = [FieldError(field=_field_name(e.get("loc", ())), message=str(e.get("msg", "invalid")))
              for e in errors]  # fmt: skip
    summary = "; ".join(f"{f.field}: {f.message}" for f in fields)
    body = ValidationErrorResponse(message=f"invalid request: {summary}", errors=fields,
                                   request_id=request_id_var.get())  # fmt: skip
    return JSONResponse(body.model_dump(), status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's own errors (an undecodable body, an unknown route, a wrong method) get the
    # same JSON shape as ours.
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "bad request"
    if exc.status_code == 400:
        detail = f"the request body could not be read: {detail}"
    return error_response(exc.status_code, detail, dict(exc.headers or {}))


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return error_response(404, str(exc))


async def _not_ready(request: Request, exc: Exception) -> JSONResponse:
    return error_response(503, f"service not ready: {exc}", {"Retry-After": "5"})


async def _misconfigured(request: Request, exc: Exception) -> JSONResponse:
    return error_response(503, f"service misconfigured: {exc}")


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    return error_response(503, f"service unavailable: {exc}; try again", {"Retry-After": "1"})


async def _overloaded(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OverloadedError)
    retry = str(max(1, exc.retry_after_s))
    return error_response(429, f"too many requests: {exc}; retry after {retry} s",
                          {"Retry-After": retry})  # fmt: skip


async def _rejected(request: Request, exc: Exception) -> JSONResponse:
    return error_response(422, f"invalid request: {exc}")


async def _unauthenticated(request: Request, exc: Exception) -> JSONResponse:
    # One message for a missing, unknown, revoked or expired key: never says which.
    return error_response(401, "missing or invalid API key: send 'Authorization: Bearer <key>' "
                          "or 'X-API-Key: <key>'", {"WWW-Authenticate": "Bearer"})  # fmt: skip


async def _forbidden(request: Request, exc: Exception) -> JSONResponse:
    return error_response(403, f"forbidden: {exc}")


async def _rate_limited(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimitedError)
    retry = exc.headers.get("Retry-After", "1")
    return error_response(429, f"rate limited: {exc}; retry after {retry} s", exc.headers)


async def _store_down(request: Request, exc: Exception) -> JSONResponse:
    return error_response(503, f"service unavailable: {exc}; try again", {"Retry-After": "1"})


async def _guard_refusal(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GuardRefusalError)
    return error_response(400, f"refused: {exc} ({exc.reason}); ask about the documentation",
                          reason=exc.reason)  # fmt: skip


async def _timeout(request: Request, exc: Exception) -> JSONResponse:
    return error_response(504, "an internal call timed out; try again")


def install_error_handlers(app: FastAPI) -> None:
    """Map the service's exceptions to statuses (the OpenAPI schema lists each one)."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IndexNotReadyError, _not_ready)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(InputError, _misconfigured)
    app.add_exception_handler(RequestRejectedError, _rejected)
    app.add_exception_handler(UnavailableError, _unavailable)
    app.add_exception_handler(OverloadedError, _overloaded)
    app.add_exception_handler(TimeoutError, _timeout)
    app.add_exception_handler(AuthenticationError, _unauthenticated)
    app.add_exception_handler(ForbiddenError, _forbidden)
    app.add_exception_handler(RateLimitedError, _rate_limited)
    app.add_exception_handler(StoreUnavailableError, _store_down)
    app.add_exception_handler(GuardRefusalError, _guard_refusal)
