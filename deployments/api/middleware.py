"""Per-request context: request id, body-size limit, last-resort 500, metrics and access log."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response

from deployments.api.errors import error_response
from ragcore.metrics import MetricsSink
from ragcore.tenancy.gate import Caller, TenantGate
from utils.logs import get_logger, request_id_var

log = get_logger("http")
TIMED_ROUTES = ("/search", "/ask", "/ask/stream")
RequestIdOf = Callable[[Request], str]


def header_request_id(request: Request) -> str:
    """The client's X-Request-ID, else a new one."""
    return request.headers.get("x-request-id") or uuid.uuid4().hex


def install_middleware(
    app: FastAPI,
    max_body_bytes: int,
    metrics: MetricsSink,
    request_id_of: RequestIdOf = header_request_id,
    echo_request_id: bool = True,
) -> None:
    """Under Serve, the proxy already honours and echoes X-Request-ID, so the ingress passes
    Serve's request id in and turns the echo off (two headers otherwise)."""

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        token = request_id_var.set(request_id_of(request)[:128])
        start = time.perf_counter()
        response: Response
        try:
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > max_body_bytes:
                response = error_response(413, f"request body over {max_body_bytes} bytes")
            else:
                response = await call_next(request)
        except Exception as exc:
            log.exception("unhandled error", extra={"error": repr(exc)[:300]})
            response = error_response(500, "internal error; see the logs for this request id")
        ms = (time.perf_counter() - start) * 1000
        if echo_request_id:
            response.headers["X-Request-ID"] = request_id_var.get()
        route = request.url.path
        metrics.request(route, response.status_code)
        variant = getattr(request.state, "variant", "")
        if variant:  # routed: the response, its log line and a metric name the variant
            response.headers["X-Variant"] = variant
            path = getattr(request.state, "answer_path", "stream" if route == "/ask/stream"
                           else "none")  # fmt: skip
            metrics.variant_request(variant.split("@")[0], route, response.status_code, path)
        if route in TIMED_ROUTES:
            metrics.stage("end_to_end", route.strip("/").replace("/", "_"), ms)
        caller: Caller | None = getattr(request.state, "caller", None)
        who = {} if caller is None else {"tenant": caller.principal.tenant,
                                         "key_id": caller.principal.key_id,
                                         "collection": caller.collection}  # fmt: skip
        log.info("request", extra={"route": route, "method": request.method,
                                   "status": response.status_code, "latency_ms": round(ms, 2),
                                   **who, **({"variant": variant} if variant else {}),
                                   **getattr(request.state, "log_extra", {})})  # fmt: skip
        if caller is not None:
            _account(request, response, caller, route)
        request_id_var.reset(token)
        return response


def _account(request: Request, response: Response, caller: Caller, route: str) -> None:
    """Rate-limit headers on the response, and the request's usage record when it ends: now,
    or for a stream when its body is done (or the client went away)."""
    for name, value in caller.headers.items():
        response.headers.setdefault(name, value)
    gate: TenantGate = request.app.state.gate
    status, request_id = response.status_code, request_id_var.get()
    body = getattr(response, "body_iterator", None)
    if body is None or not response.headers.get("content-type", "").startswith("text/event-stream"):
        gate.finish(caller, route, status, request_id)
        return

    async def accounted() -> AsyncIterator[Any]:
        try:
            async for chunk in body:
                yield chunk
        finally:
            gate.finish(caller, route, status, request_id)

    response.body_iterator = accounted()  # type: ignore[attr-defined]
