"""OpenAI-compatible routes on the same engine: model list and chat completions.

With auth on, a chat completion is admitted like /ask: the request limits (and a stream lease
for stream=true), then prompt plus max_tokens reserved (max_tokens defaults to the server's
generator.max_tokens, so the reservation is bounded) and settled to the engine's usage."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from deployments.api.auth import ChatCaller, budget_for, get_gate
from deployments.api.dependencies import ServiceDep
from deployments.api.errors import error_response
from deployments.api.responses import AUTH, BODY_ROUTE, INTERNAL, SSE, SSE_EVENT, responses
from deployments.api.schemas import ChatCompletionBody, ModelCard, ModelList
from ragcore.protocols import TokenBudget, Usage
from ragcore.tenancy.gate import Caller

router = APIRouter(prefix="/v1", tags=["openai"])
CHAT_RESPONSES = responses(SSE, {200: {"description": "A chat completion (OpenAI's shape), or "
                           "its chunks as Server-Sent Events with stream=true.", "content": {
                           "application/json": {"schema": {"type": "object"}},
                           "text/event-stream": {"schema": SSE_EVENT}}}},
                           BODY_ROUTE)  # fmt: skip


@router.get("/models", response_model=ModelList, summary="Models (OpenAI clients list first)",
            responses=responses(AUTH, INTERNAL))  # fmt: skip
async def list_models(service: ServiceDep, caller: ChatCaller) -> ModelList:
    gen = service.settings.generator
    return ModelList(data=[ModelCard(id=gen.model_id)] if gen.enabled else [])


@router.post("/chat/completions", summary="OpenAI-compatible chat completions (same engine)",
             response_model=None, responses=CHAT_RESPONSES)  # fmt: skip
async def chat_completions(
    body: ChatCompletionBody, request: Request, service: ServiceDep, caller: ChatCaller
) -> Response:
    openai_chat = getattr(service.generator, "openai_chat", None)
    if openai_chat is None:
        return error_response(503, "the generator is disabled in this deployment")
    payload = body.model_dump(exclude_none=True)
    guards, tenant = service.guards, caller.principal.tenant if caller else None
    if guards is not None:  # a refusal is a 400 with its reason code, before any charge
        payload["messages"] = await asyncio.to_thread(guards.screen_chat, payload["messages"],
                                                      request.url.path, tenant)  # fmt: skip
    budget, prompt_tokens = await _reserve(request, caller, service, payload)
    items = openai_chat(payload)
    try:
        first = await anext(items)
    except BaseException as exc:
        await _settle(budget, Usage())
        if isinstance(exc, ValueError):
            return error_response(422, f"invalid request: {exc}")
        raise
    if isinstance(first, dict):
        await items.aclose()
        await _settle(budget, _usage_of(first))
        if "choices" not in first:
            code = int(first.get("code") or 400)
            return error_response(code if 400 <= code < 600 else 400,
                                  str(first.get("message") or first)[:500])  # fmt: skip
        if guards is not None:
            await asyncio.to_thread(guards.screen_chat_reply, first, request.url.path, tenant)
        return JSONResponse(first)
    return StreamingResponse(_passthrough(first, items, budget, prompt_tokens),
                             media_type="text/event-stream")  # fmt: skip


async def _reserve(
    request: Request, caller: Caller | None, service: ServiceDep, payload: dict[str, Any]
) -> tuple[TokenBudget | None, int]:
    """Admit the request and reserve its tokens (auth on only); the budget and the counted
    prompt tokens."""
    gate, budget = get_gate(request), budget_for(request, caller)
    if gate is None or caller is None or budget is None:
        return None, 0
    await gate.admit(caller, stream=bool(payload.get("stream")))
    payload.setdefault("max_tokens", service.settings.generator.max_tokens)
    if payload.get("stream"):  # the last chunk then carries the usage to settle with
        payload["stream_options"] = {**payload.get("stream_options", {}), "include_usage": True}
    prompt_tokens = service.count_tokens(payload["messages"])
    await budget.reserve(prompt_tokens + payload["max_tokens"])
    return budget, prompt_tokens


def _usage_of(payload: dict[str, Any]) -> Usage:
    usage = payload.get("usage") or {}
    return Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


async def _settle(budget: TokenBudget | None, usage: Usage) -> None:
    if budget is not None:
        await budget.settle(usage)


async def _passthrough(
    first: str, items: AsyncIterator[Any], budget: TokenBudget | None, prompt_tokens: int
) -> AsyncIterator[str]:
    """Relay the engine's own SSE strings; closing cancels the generation. The usage chunk
    settles the reservation (the counted prompt and a token a chunk if the stream was cut
    before it came)."""
    usage, chunks = Usage(), 0
    item: Any = first
    try:
        while True:
            text = item if isinstance(item, str) else f"data: {json.dumps(item)}\n\n"
            chunks += 1
            if '"usage"' in text:
                usage = _stream_usage(text) or usage
            yield text
            try:
                item = await anext(items)
            except StopAsyncIteration:
                break
    finally:
        await items.aclose()  # type: ignore[attr-defined]
        await _settle(budget, usage if usage.total else Usage(prompt_tokens, chunks))


def _stream_usage(text: str) -> Usage | None:
    """The usage of an SSE chunk that carries one."""
    for line in text.splitlines():
        if line.startswith("data:") and line[5:].strip() != "[DONE]":
            try:
                payload = json.loads(line[5:])
            except ValueError:
                continue
            if isinstance(payload, dict) and payload.get("usage"):
                return _usage_of(payload)
    return None
