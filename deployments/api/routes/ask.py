"""Grounded answers, whole or as Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from deployments.api.auth import (
    AskCaller,
    StreamCaller,
    admitted,
    budget_for,
    collection_for,
    tenant_of,
)
from deployments.api.dependencies import RequestIdDep, ServiceDep
from deployments.api.responses import BODY_ROUTE, SSE, responses
from deployments.api.schemas import AskRequest, AskResponse, to_ask_response
from deployments.api.variants import route_for
from ragcore.protocols import AnswerDone, AnswerEvent, AnswerToken
from utils.logs import get_logger, request_id_var

router = APIRouter(tags=["answers"])
log = get_logger("http")


@router.post("/ask", response_model=AskResponse, summary="Grounded answer with sources",
             responses=BODY_ROUTE)  # fmt: skip
async def ask(
    req: AskRequest,
    request: Request,
    service: ServiceDep,
    request_id: RequestIdDep,
    caller: AskCaller,
) -> AskResponse:
    collection = collection_for(request, caller, req.collection)
    variant = route_for(request, caller).variant
    answer = await service.ask(req.question, req.top_k, req.options(), collection,
                               budget_for(request, caller), tenant_of(caller), variant)  # fmt: skip
    await admitted(request, caller)
    request.state.answer_path = answer.path
    request.state.log_extra = {"answer_path": answer.path, "cache": answer.cache,
                               "tokens_prompt": answer.usage.prompt,
                               "tokens_completion": answer.usage.completion,
                               "answer_status": answer.status, "answer_mode": answer.mode,
                               "prompt_version": answer.prompt_version}  # fmt: skip
    return to_ask_response(answer, request_id)


@router.post("/ask/stream", summary="Grounded answer as Server-Sent Events",
             response_class=StreamingResponse, responses=responses(SSE, BODY_ROUTE))  # fmt: skip
async def ask_stream(
    req: AskRequest,
    request: Request,
    service: ServiceDep,
    request_id: RequestIdDep,
    caller: StreamCaller,
) -> StreamingResponse:
    """`token` events ({"text"}: screened answer text as it is generated), then one `done`
    event with the whole /ask body. Its `answer` is the final text: when `answer_mode` is
    `extractive` it replaces what was streamed (a stream that loops is cut there)."""
    collection = collection_for(request, caller, req.collection)
    variant = route_for(request, caller).variant
    events = service.ask_stream(req.question, req.top_k, req.options(), collection,
                                budget_for(request, caller), tenant_of(caller),
                                variant)  # fmt: skip
    # Search errors (503, 504) must surface before the 200 and its headers are sent.
    first = await anext(events)
    return StreamingResponse(_sse(first, events, request, request_id),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})  # fmt: skip


def _format(event: AnswerEvent, request_id: str) -> str:
    if isinstance(event, AnswerToken):
        return f"event: token\ndata: {json.dumps({'text': event.text})}\n\n"
    assert isinstance(event, AnswerDone)
    answer = event.answer
    # The request line was logged when the stream started; the answer gets its own line.
    log.info("answer streamed", extra={"answer_mode": answer.mode, "answer_path": answer.path,
                                       "cache": answer.cache,
                                       "prompt_version": answer.prompt_version,
                                       "answer_status": answer.status,
                                       "tokens_completion": answer.usage.completion})  # fmt: skip
    body = to_ask_response(answer, request_id).model_dump()
    return f"event: done\ndata: {json.dumps(body)}\n\n"


async def _sse(
    first: AnswerEvent, events: AsyncIterator[AnswerEvent], request: Request, request_id: str
) -> AsyncIterator[str]:
    """Format events as SSE; stop (and so cancel generation) when the client goes away."""
    # The body streams in its own task after the middleware returned: set the id for its logs
    # (never reset: a generator finalised from another context could not reset it).
    request_id_var.set(request_id)
    try:
        yield _format(first, request_id)
        async for event in events:
            if await request.is_disconnected():
                log.info("client disconnected; generation cancelled")
                break
            yield _format(event, request_id)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
