"""The RAG logic, free of Ray and of HTTP: search, prompt, generate, degrade, warm up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from ragcore.metrics import MetricsSink, NullMetrics
from ragcore.prompts import build_messages
from ragcore.protocols import (
    Answer,
    AnswerDone,
    AnswerEvent,
    AnswerToken,
    Generator,
    Hit,
    Readiness,
    Searcher,
    SearchOutcome,
    Usage,
)
from utils.errors import OverloadedError
from utils.logs import get_logger
from utils.settings import ServiceSettings

log = get_logger("service")
NO_CONTEXT_ANSWER = "I could not find anything about that in the documentation."
WARMUP_QUESTION = "How do I configure the number of replicas of a deployment?"


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class RAGService:
    """Answers search and ask requests from a searcher and a generator."""

    def __init__(
        self,
        searcher: Searcher,
        generator: Generator | None,
        settings: ServiceSettings,
        metrics: MetricsSink | None = None,
    ) -> None:
        self.searcher = searcher
        self.generator = generator
        self.settings = settings
        self.metrics = metrics or NullMetrics()
        # "warming" until warm_up() finishes: ready must mean fast, so /readyz waits for it.
        if generator is None:
            self.generator_state = "disabled"
        else:
            warm = settings.generator.warmup_timeout_s > 0
            self.generator_state = "warming" if warm else "ready (not warmed up)"

    async def warm_up(self) -> None:
        """Run one full-size generation (a RAG-sized prompt) before the service reports ready,
        so the first real /ask does not pay the engine's first-request costs. Retries while the
        engine is still starting; after `warmup_timeout_s` the service goes ready without it
        and /ask degrades until the engine answers."""
        gen = self.settings.generator
        if self.generator is None or gen.warmup_timeout_s <= 0:
            return
        deadline = time.monotonic() + gen.warmup_timeout_s
        filler = [Hit("Replicas are set with num_replicas in the deployment options. " * 12,
                      f"warmup#{i}", 1.0) for i in range(5)]  # fmt: skip
        messages = build_messages(WARMUP_QUESTION, filler, gen.max_context_chars)
        while True:
            start = time.perf_counter()
            try:
                await asyncio.wait_for(self.generator.generate(messages, 8), gen.timeout_s)
                self.generator_state = "ready"
                log.info("generator warm", extra={"warmup_ms": round(_ms(start), 1)})
                return
            except Exception as exc:
                reason = f"{type(exc).__name__}: {str(exc)[:200]}"
                if time.monotonic() > deadline:
                    self.generator_state = f"unavailable ({reason})"
                    log.warning("generator warm-up gave up", extra={"error": reason})
                    return
                await asyncio.sleep(2.0)

    async def readiness(self) -> Readiness:
        """Ready when the index is loaded and the generator is warm (or disabled, or given up
        on: then /ask degrades to sources, which the details say)."""
        index = await self.searcher.readiness()
        details = {**index.details, "generator": await self._generator_health()}
        if index.ready and self.generator_state == "warming":
            return Readiness(False, "the generator is warming up", details)
        return Readiness(index.ready, index.reason, details)

    async def _generator_health(self) -> str:
        """The warm-up state, or, once warm, whether the engine answers its health check now
        (an engine that died since is reported, while search keeps the service ready)."""
        if self.generator is None or self.generator_state != "ready":
            return self.generator_state
        try:
            state = await asyncio.wait_for(self.generator.readiness(), 5.0)
        except Exception as exc:
            return f"unavailable ({type(exc).__name__})"
        return "ready" if state.ready else f"unavailable ({state.reason})"

    async def search(self, query: str, k: int, route: str = "search") -> SearchOutcome:
        """Top-k hits; IndexNotReadyError (503) when no usable index is loaded."""
        return await self.searcher.search(query, k, route)

    def _prompt(self, question: str, hits: list[Hit]) -> list[dict[str, str]]:
        return build_messages(question, hits, self.settings.generator.max_context_chars)

    async def ask(self, question: str, top_k: int, max_tokens: int | None) -> Answer:
        """A grounded answer; degrades to sources only when generation fails or times out."""
        start = time.perf_counter()
        outcome = await self.search(question, top_k, route="ask")
        hits = outcome.hits
        if not hits:
            return Answer(NO_CONTEXT_ANSWER, [], Usage(), _ms(start),
                          message="no relevant passages were found")  # fmt: skip
        if self.generator is None:
            return self._degraded(hits, start, "generator is disabled")
        gen_start = time.perf_counter()
        try:
            generation = await asyncio.wait_for(
                self.generator.generate(
                    self._prompt(question, hits), max_tokens or self.settings.generator.max_tokens
                ),
                self.settings.generator.timeout_s,
            )
        except TimeoutError:
            return self._degraded(hits, start, "the generator timed out")
        except OverloadedError:
            raise  # a 429 with Retry-After: the client should come back, not get no answer
        except Exception as exc:
            log.warning("generation failed", extra={"error": repr(exc)[:500]})
            return self._degraded(hits, start, "the generator is unavailable")
        gen_ms = _ms(gen_start)
        self.metrics.stage("generate", "ask", gen_ms)
        self.metrics.tokens(generation.prompt_tokens, generation.completion_tokens)
        if generation.completion_tokens:
            self.metrics.per_output_token(gen_ms / generation.completion_tokens)
        usage = Usage(generation.prompt_tokens, generation.completion_tokens)
        self.generator_state = "ready"
        return Answer(generation.text.strip(), hits, usage, _ms(start))

    def _degraded(self, hits: list[Hit], start: float, reason: str) -> Answer:
        self.metrics.degraded(reason)
        return Answer("", hits, Usage(), _ms(start), "degraded",
                      f"{reason}; returning the retrieved sources without an answer")  # fmt: skip

    async def ask_stream(
        self, question: str, top_k: int, max_tokens: int | None
    ) -> AsyncIterator[AnswerEvent]:
        """`AnswerToken`s as the engine produces them, then one `AnswerDone`. Search errors
        raise before the first event; closing the iterator cancels generation."""
        start = time.perf_counter()
        outcome = await self.search(question, top_k, route="ask_stream")
        hits = outcome.hits
        if not hits:
            yield AnswerToken(NO_CONTEXT_ANSWER)
            yield AnswerDone(Answer(NO_CONTEXT_ANSWER, [], Usage(), _ms(start),
                                    message="no relevant passages were found"))  # fmt: skip
            return
        if self.generator is None:
            yield AnswerDone(self._degraded(hits, start, "generator is disabled"))
            return
        usage, status, message, parts = Usage(), "ok", "", []
        first_token_at: float | None = None
        deadline = time.monotonic() + self.settings.generator.timeout_s
        stream = self.generator.stream(
            self._prompt(question, hits), max_tokens or self.settings.generator.max_tokens
        )
        try:
            async for delta in stream:
                if time.monotonic() > deadline:
                    raise TimeoutError
                if delta.text:
                    if first_token_at is None:
                        first_token_at = time.perf_counter()
                        self.metrics.first_token((first_token_at - start) * 1000)
                    parts.append(delta.text)
                    yield AnswerToken(delta.text)
                if delta.completion_tokens is not None:
                    usage = Usage(delta.prompt_tokens or 0, delta.completion_tokens)
        except Exception as exc:
            status, message = "degraded", f"generation stopped: {type(exc).__name__}"
            self.metrics.degraded("stream failed")
        finally:
            await _aclose(stream)
        self.metrics.tokens(usage.prompt, usage.completion)
        if first_token_at is not None and usage.completion > 1:
            self.metrics.per_output_token(_ms(first_token_at) / (usage.completion - 1))
        self.metrics.stage("generate", "ask_stream", _ms(start))
        yield AnswerDone(Answer("".join(parts).strip(), hits, usage, _ms(start),
                                status, message))  # type: ignore[arg-type]  # fmt: skip


async def _aclose(stream: AsyncIterator[Any]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
