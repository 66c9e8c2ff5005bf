"""The RAG logic, free of Ray: embed, retrieve, prompt, generate, degrade."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from deployments.metrics import MetricsSink, NullMetrics
from deployments.prompt import build_messages
from deployments.protocols import Embedder, Generator, Hit, Readiness, Retriever, SearchOutcome
from deployments.schemas import AskResponse, Source, TokenUsage
from utils.logs import get_logger
from utils.settings import ServiceSettings

log = get_logger("service")
NO_CONTEXT_ANSWER = "I could not find anything about that in the documentation."


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _sources(hits: list[Hit]) -> list[Source]:
    return [Source(source=h.source, content=h.content, score=h.score) for h in hits]


class RAGService:
    """Answers search and ask requests from an embedder, a retriever and a generator."""

    def __init__(
        self,
        embedder: Embedder,
        retriever: Retriever,
        generator: Generator | None,
        settings: ServiceSettings,
        metrics: MetricsSink | None = None,
    ) -> None:
        self.embedder = embedder
        self.retriever = retriever
        self.generator = generator
        self.settings = settings
        self.metrics = metrics or NullMetrics()

    async def readiness(self) -> Readiness:
        """Ready when the index is loaded (the generator only degrades /ask, so it is reported
        but does not make the service unready)."""
        index = await asyncio.wait_for(self.retriever.readiness(), self.settings.call_timeout_s)
        details = dict(index.details)
        if self.generator is None:
            details["generator"] = "disabled"
        else:
            try:
                gen = await asyncio.wait_for(self.generator.readiness(), 5.0)
                details["generator"] = "ready" if gen.ready else f"not ready: {gen.reason}"
            except (TimeoutError, Exception) as exc:
                details["generator"] = f"not ready: {type(exc).__name__}"
        return Readiness(index.ready, index.reason, details)

    async def search(self, query: str, k: int, route: str = "search") -> SearchOutcome:
        """Top-k hits; raises IndexNotReadyError (503) when no usable index is loaded."""
        timeout = self.settings.call_timeout_s
        start = time.perf_counter()
        embedding = await asyncio.wait_for(self.embedder.embed(query), timeout)
        self.metrics.stage("embed", route, _ms(start))
        start = time.perf_counter()
        outcome = await asyncio.wait_for(self.retriever.search(query, embedding, k), timeout)
        self.metrics.stage("retrieve", route, _ms(start))
        if not outcome.hits:
            self.metrics.empty_retrieval(route)
        return outcome

    def _prompt(self, question: str, hits: list[Hit]) -> list[dict[str, str]]:
        return build_messages(question, hits, self.settings.generator.max_context_chars)

    async def ask(
        self, question: str, top_k: int, max_tokens: int | None, request_id: str
    ) -> AskResponse:
        """A grounded answer; degrades to sources only when generation fails or times out."""
        start = time.perf_counter()
        outcome = await self.search(question, top_k, route="ask")
        sources = _sources(outcome.hits)
        if not outcome.hits:
            return AskResponse(answer=NO_CONTEXT_ANSWER, sources=[], tokens_used=TokenUsage(),
                               latency_ms=_ms(start), request_id=request_id,
                               message="no relevant passages were found")  # fmt: skip
        if self.generator is None:
            return self._degraded(sources, start, request_id, "generator is disabled")
        gen_start = time.perf_counter()
        try:
            generation = await asyncio.wait_for(
                self.generator.generate(
                    self._prompt(question, outcome.hits),
                    max_tokens or self.settings.generator.max_tokens,
                ),
                self.settings.generator.timeout_s,
            )
        except TimeoutError:
            return self._degraded(sources, start, request_id, "the generator timed out")
        except Exception as exc:
            log.warning("generation failed", extra={"error": repr(exc)[:500]})
            return self._degraded(sources, start, request_id, "the generator is unavailable")
        gen_ms = _ms(gen_start)
        self.metrics.stage("generate", "ask", gen_ms)
        self.metrics.tokens(generation.prompt_tokens, generation.completion_tokens)
        if generation.completion_tokens:
            self.metrics.per_output_token(gen_ms / generation.completion_tokens)
        usage = TokenUsage(
            prompt=generation.prompt_tokens,
            completion=generation.completion_tokens,
            total=generation.prompt_tokens + generation.completion_tokens,
        )
        return AskResponse(answer=generation.text.strip(), sources=sources, tokens_used=usage,
                           latency_ms=_ms(start), request_id=request_id)  # fmt: skip

    def _degraded(
        self, sources: list[Source], start: float, request_id: str, reason: str
    ) -> AskResponse:
        self.metrics.degraded(reason)
        return AskResponse(
            answer="", sources=sources, tokens_used=TokenUsage(), latency_ms=_ms(start),
            request_id=request_id, status="degraded",
            message=f"{reason}; returning the retrieved sources without an answer",
        )  # fmt: skip

    async def ask_stream(
        self, question: str, top_k: int, max_tokens: int | None, request_id: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """("token", {"text"}) events as the engine produces them, then one ("done", {...})
        event with sources, usage and status. Closing the iterator cancels generation."""
        start = time.perf_counter()
        outcome = await self.search(question, top_k, route="ask_stream")
        sources = _sources(outcome.hits)
        final = {"sources": [s.model_dump() for s in sources], "request_id": request_id}
        if not outcome.hits or self.generator is None:
            reason = "no relevant passages were found" if not outcome.hits else "disabled"
            if outcome.hits:
                self.metrics.degraded("generator is disabled")
            else:
                yield "token", {"text": NO_CONTEXT_ANSWER}
            yield "done", {**final, "tokens_used": TokenUsage().model_dump(),
                           "latency_ms": _ms(start), "status": "ok" if not outcome.hits
                           else "degraded", "message": reason}  # fmt: skip
            return
        usage = TokenUsage()
        status, message = "ok", ""
        first_token_at: float | None = None
        deadline = time.monotonic() + self.settings.generator.timeout_s
        stream = self.generator.stream(
            self._prompt(question, outcome.hits), max_tokens or self.settings.generator.max_tokens
        )
        try:
            async for delta in stream:
                if time.monotonic() > deadline:
                    raise TimeoutError
                if delta.text:
                    if first_token_at is None:
                        first_token_at = time.perf_counter()
                        self.metrics.first_token((first_token_at - start) * 1000)
                    yield "token", {"text": delta.text}
                if delta.completion_tokens is not None:
                    usage = TokenUsage(
                        prompt=delta.prompt_tokens or 0,
                        completion=delta.completion_tokens,
                        total=(delta.prompt_tokens or 0) + delta.completion_tokens,
                    )
        except Exception as exc:
            status, message = "degraded", f"generation stopped: {type(exc).__name__}"
            self.metrics.degraded("stream failed")
        finally:
            await _aclose(stream)
        self.metrics.tokens(usage.prompt, usage.completion)
        if first_token_at is not None and usage.completion > 1:
            self.metrics.per_output_token(_ms(first_token_at) / (usage.completion - 1))
        self.metrics.stage("generate", "ask_stream", _ms(start))
        yield "done", {**final, "tokens_used": usage.model_dump(), "latency_ms": _ms(start),
                       "status": status, "message": message}  # fmt: skip


async def _aclose(stream: AsyncIterator[Any]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
