"""OpenAI-compatible routes on the same engine: model list and chat completions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, StreamingResponse

from deployments.api.dependencies import ServiceDep
from deployments.api.errors import error_response
from deployments.api.responses import BODY_ROUTE, INTERNAL, SSE, SSE_EVENT, responses
from deployments.api.schemas import ChatCompletionBody, ModelCard, ModelList

router = APIRouter(prefix="/v1", tags=["openai"])
CHAT_RESPONSES = responses(SSE, {200: {"description": "A chat completion (OpenAI's shape), or "
                           "its chunks as Server-Sent Events with stream=true.", "content": {
                           "application/json": {"schema": {"type": "object"}},
                           "text/event-stream": {"schema": SSE_EVENT}}}},
                           BODY_ROUTE)  # fmt: skip


@router.get("/models", response_model=ModelList, summary="Models (OpenAI clients list first)",
            responses=responses(INTERNAL))  # fmt: skip
async def list_models(service: ServiceDep) -> ModelList:
    gen = service.settings.generator
    return ModelList(data=[ModelCard(id=gen.model_id)] if gen.enabled else [])


@router.post("/chat/completions", summary="OpenAI-compatible chat completions (same engine)",
             response_model=None, responses=CHAT_RESPONSES)  # fmt: skip
async def chat_completions(body: ChatCompletionBody, service: ServiceDep) -> Response:
    openai_chat = getattr(service.generator, "openai_chat", None)
    if openai_chat is None:
        return error_response(503, "the generator is disabled in this deployment")
    items = openai_chat(body.model_dump(exclude_none=True))
    try:
        first = await anext(items)
    except ValueError as exc:
        return error_response(422, f"invalid request: {exc}")
    if isinstance(first, dict):
        await items.aclose()
        if "choices" not in first:
            code = int(first.get("code") or 400)
            return error_response(code if 400 <= code < 600 else 400,
                                  str(first.get("message") or first)[:500])  # fmt: skip
        return JSONResponse(first)
    return StreamingResponse(_passthrough(first, items), media_type="text/event-stream")


async def _passthrough(first: str, items: AsyncIterator[Any]) -> AsyncIterator[str]:
    """Relay the engine's own SSE strings; closing cancels the generation."""
    try:
        yield first
        async for item in items:
            yield item if isinstance(item, str) else f"data: {json.dumps(item)}\n\n"
    finally:
        await items.aclose()  # type: ignore[attr-defined]
