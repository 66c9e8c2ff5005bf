"""OpenAPI `responses` for each route: every status and content type a route can return."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deployments.api.schemas import ErrorResponse, ValidationErrorResponse

_ERR = {"model": ErrorResponse}
BAD_JSON = {
    400: {
        **_ERR,
        "description": "The body is not valid JSON, or a guard refused the "
        "question (`reason` holds its code).",
    }
}
TOO_LARGE = {413: {**_ERR, "description": "The body is larger than max_body_bytes."}}
INVALID = {422: {"model": ValidationErrorResponse, "description": "A field is invalid."}}
OVERLOADED = {
    429: {
        **_ERR,
        "description": "At capacity, or a tenant limit refused the request: "
        "retry after the Retry-After header (X-RateLimit-* say which limit).",
    }
}
AUTH = {
    401: {**_ERR, "description": "Missing or invalid API key (Bearer or X-API-Key)."},
    403: {**_ERR, "description": "The key lacks the scope or the collection."},
}
INTERNAL = {500: {**_ERR, "description": "An unexpected error (logged with the request id)."}}
UNAVAILABLE = {503: {**_ERR, "description": "Not ready (no index yet, a part restarting or "
                     "overloaded); the message says why. Retry-After when transient."}}  # fmt: skip
TIMEOUT = {504: {**_ERR, "description": "An internal call timed out."}}
# One Server-Sent Event: an optional `event` name and its JSON `data`.
SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
}
SSE = {200: {"description": "Server-Sent Events.",
             "content": {"text/event-stream": {"schema": SSE_EVENT}}}}  # fmt: skip


def responses(*groups: Mapping[Any, Any]) -> dict[int | str, dict[str, Any]]:
    """Merge response groups for a route's `responses=`."""
    merged: dict[int | str, dict[str, Any]] = {}
    for group in groups:
        merged.update(group)
    return merged


QUERY_ROUTE = responses(AUTH, TOO_LARGE, INVALID, OVERLOADED, INTERNAL, UNAVAILABLE, TIMEOUT)
BODY_ROUTE = responses(BAD_JSON, QUERY_ROUTE)
