"""FastAPI ingress: routes, request ids, JSON access logs and error mapping."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse

from deployments.metrics import MetricsSink, NullMetrics
from deployments.rag_service import RAGService
from deployments.schemas import (
    MAX_K,
    MAX_QUERY_CHARS,
    AskRequest,
    AskResponse,
    ErrorResponse,
    SearchHit,
    SearchRequest,
    SearchResponse,
)
from utils.errors import IndexNotReadyError, InputError
from utils.logs import get_logger, request_id_var

log = get_logger("http")
ServiceGetter = Callable[[], RAGService]


def _error(status: int, message: str) -> JSONResponse:
    body = ErrorResponse(message=message, request_id=request_id_var.get())
    return JSONResponse(body.model_dump(), status_code=status)


def _header_request_id(request: Request) -> str:
    return request.headers.get("x-request-id") or uuid.uuid4().hex


def create_app(
    get_service: ServiceGetter,
    max_body_bytes: int,
    metrics: MetricsSink | None = None,
    request_id_of: Callable[[Request], str] = _header_request_id,
    echo_request_id: bool = True,
) -> FastAPI:
    """The HTTP API over a `RAGService` (resolved per request, so tests can swap it).

    Under Serve, the proxy already honours and echoes X-Request-ID, so the ingress passes
    Serve's request id in and turns the echo off (two headers otherwise)."""
    sink = metrics or NullMetrics()
    app = FastAPI(
        title="ray-rag",
        description="Search and grounded answers over a documentation index, on Ray Serve.",
        version="0.1.0",
    )

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = request_id_of(request)
        token = request_id_var.set(request_id[:128])
        start = time.perf_counter()
        try:
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > max_body_bytes:
                response: Response = _error(413, f"request body over {max_body_bytes} bytes")
            else:
                response = await call_next(request)
        except Exception as exc:
            log.exception("unhandled error", extra={"error": repr(exc)[:300]})
            response = _error(500, "internal error; see the service logs for this request id")
        ms = (time.perf_counter() - start) * 1000
        if echo_request_id:
            response.headers["X-Request-ID"] = request_id_var.get()
        route = request.url.path
        sink.request(route, response.status_code)
        if route in ("/search", "/ask", "/ask/stream"):
            sink.stage("end_to_end", route.strip("/").replace("/", "_"), ms)
        log.info("request", extra={"route": route, "method": request.method,
                                   "status": response.status_code, "latency_ms": round(ms, 2),
                                   **getattr(request.state, "log_extra", {})})  # fmt: skip
        request_id_var.reset(token)
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            fields.append({"field": where, "message": err.get("msg", "invalid")})
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        body = {**ErrorResponse(message=f"invalid request: {summary}",
                                request_id=request_id_var.get()).model_dump(),
                "errors": fields}  # fmt: skip
        return JSONResponse(body, status_code=422)

    @app.exception_handler(IndexNotReadyError)
    async def not_ready(request: Request, exc: IndexNotReadyError) -> JSONResponse:
        return _error(503, f"service not ready: {exc}")

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError) -> JSONResponse:
        return _error(503, f"service misconfigured: {exc}")

    @app.exception_handler(TimeoutError)
    async def timeout(request: Request, exc: TimeoutError) -> JSONResponse:
        return _error(504, "an internal call timed out; try again")

    @app.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Index and models are loaded (503 with the reason otherwise)")
    async def readyz() -> JSONResponse:
        state = await get_service().readiness()
        body = {"ready": state.ready, "reason": state.reason, **state.details}
        return JSONResponse(body, status_code=200 if state.ready else 503)

    async def _search(req: SearchRequest) -> SearchResponse:
        outcome = await get_service().search(req.query, req.k)
        hits = [SearchHit(content=h.content, source=h.source, score=h.score, title=h.title)
                for h in outcome.hits]  # fmt: skip
        message = "" if hits else "no results"
        return SearchResponse(results=hits, message=message, request_id=request_id_var.get())

    @app.get("/search", response_model=SearchResponse, summary="Hybrid search")
    async def search_get(
        query: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 5,
    ) -> SearchResponse:
        return await _search(SearchRequest(query=query, k=k))

    @app.post("/search", response_model=SearchResponse, summary="Hybrid search (JSON body)")
    async def search_post(req: SearchRequest) -> SearchResponse:
        return await _search(req)

    @app.post("/ask", response_model=AskResponse, summary="Grounded answer with sources")
    async def ask(req: AskRequest, request: Request) -> AskResponse:
        answer = await get_service().ask(req.question, req.top_k, req.max_tokens,
                                         request_id_var.get())  # fmt: skip
        request.state.log_extra = {"tokens_prompt": answer.tokens_used.prompt,
                                   "tokens_completion": answer.tokens_used.completion,
                                   "answer_status": answer.status}  # fmt: skip
        return answer

    @app.post("/ask/stream", summary="Grounded answer as Server-Sent Events")
    async def ask_stream(req: AskRequest, request: Request) -> StreamingResponse:
        service = get_service()
        events = service.ask_stream(req.question, req.top_k, req.max_tokens, request_id_var.get())
        # Retrieval errors (503) must surface before the 200 and its headers are sent.
        first = await anext(events)
        return StreamingResponse(_sse(first, events, request), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})  # fmt: skip

    @app.post("/v1/chat/completions", summary="OpenAI-compatible chat completions (same engine)")
    async def chat_completions(request: Request) -> Response:
        generator = get_service().generator
        openai_chat = getattr(generator, "openai_chat", None)
        if openai_chat is None:
            return _error(503, "the generator is disabled in this deployment")
        try:
            payload = await request.json()
        except ValueError:
            return _error(422, "invalid request: body is not valid JSON")
        if not isinstance(payload, dict):
            return _error(422, "invalid request: body must be a JSON object")
        items = openai_chat(payload)
        try:
            first = await anext(items)
        except ValueError as exc:
            return _error(422, f"invalid request: {exc}")
        if isinstance(first, dict):
            await items.aclose()
            if "choices" not in first:
                return JSONResponse(first, status_code=int(first.get("code") or 400))
            return JSONResponse(first)
        return StreamingResponse(_passthrough(first, items), media_type="text/event-stream")

    return app


async def _passthrough(first: str, items: AsyncIterator[Any]) -> AsyncIterator[str]:
    """Relay the engine's own SSE strings; closing cancels the generation."""
    try:
        yield first
        async for item in items:
            yield item if isinstance(item, str) else f"data: {json.dumps(item)}\n\n"
    finally:
        await items.aclose()  # type: ignore[attr-defined]


async def _sse(
    first: tuple[str, dict[str, Any]],
    events: AsyncIterator[tuple[str, dict[str, Any]]],
    request: Request,
) -> AsyncIterator[str]:
    """Format events as SSE; stop (and so cancel generation) when the client goes away."""
    try:
        yield f"event: {first[0]}\ndata: {json.dumps(first[1])}\n\n"
        async for name, data in events:
            if await request.is_disconnected():
                log.info("client disconnected; generation cancelled")
                break
            yield f"event: {name}\ndata: {json.dumps(data)}\n\n"
    finally:
        await events.aclose()  # type: ignore[attr-defined]
