"""The RAG logic, free of Ray and of HTTP: search, prompt, generate, degrade, warm up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from typing import Literal

from ragcore.answer_stream import StreamGuard
from ragcore.answering import AnswerPolicy, AskOptions, FinishedAnswer
from ragcore.generation_run import GenerationRun, aclose
from ragcore.guards.pipeline import GuardPipeline, GuardSession
from ragcore.metrics import MetricsSink, NullMetrics
from ragcore.protocols import (
    Answer,
    AnswerDone,
    AnswerEvent,
    AnswerToken,
    DecodingParams,
    GenerationDelta,
    Generator,
    Hit,
    Readiness,
    Searcher,
    SearchOutcome,
    TokenBudget,
    Usage,
)
from ragcore.token_count import byte_bound
from utils.errors import OverloadedError, RequestRejectedError
from utils.logs import get_logger
from utils.settings import ServiceSettings

log = get_logger("service")
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
        policy: AnswerPolicy | None = None,
        collections: Mapping[str, Searcher] | None = None,
        count_tokens: Callable[[list[dict[str, str]]], int] = byte_bound,
        guards: GuardPipeline | None = None,
    ) -> None:
        self.searcher = searcher
        # Every served collection by name; `searcher` is the default collection's.
        self.collections = {settings.default_collection: searcher, **(collections or {})}
        self.count_tokens = count_tokens
        self.guards = guards
        self.policy = policy or AnswerPolicy(settings.answers, settings.generator)
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
        messages = self.policy.template(None).render(WARMUP_QUESTION, filler, gen.max_context_chars)
        while True:
            start = time.perf_counter()
            try:
                await asyncio.wait_for(
                    self.generator.generate(messages, DecodingParams(max_tokens=8)), gen.timeout_s
                )
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
        for name, searcher in self.collections.items():
            if searcher is not self.searcher:
                state = await searcher.readiness()
                details[f"collection:{name}"] = state.details.get("index_version", state.reason)
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

    async def search(
        self, query: str, k: int, route: str = "search", collection: str | None = None
    ) -> SearchOutcome:
        """Top-k hits of a collection (None: the default); IndexNotReadyError (503) when no
        usable index is loaded, RequestRejectedError (422) for a collection not served."""
        searcher = self.collections.get(collection or self.settings.default_collection)
        if searcher is None:
            raise RequestRejectedError(f"collection '{collection}' is not served here; "
                                       f"served: {', '.join(self.collections)}")  # fmt: skip
        return await searcher.search(query, k, route)

    async def ask(
        self,
        question: str,
        top_k: int,
        options: AskOptions | None = None,
        collection: str | None = None,
        budget: TokenBudget | None = None,
        tenant: str | None = None,
    ) -> Answer:
        """A validated, cited answer: generated when it passes the checks, else extractive;
        refused when nothing relevant was retrieved. It is generated as a stream, so a loop
        is cut as it starts, as on /ask/stream. RequestRejectedError (422) for options the
        server does not allow; OverloadedError (429) when the engine is full; GuardRefusalError
        (400) when a guard refuses the question (`tenant` picks its guard settings)."""
        answer: Answer | None = None
        events = self._events(question, top_k, options or AskOptions(), "ask", collection, budget,
                              tenant)  # fmt: skip
        async for event in events:
            if isinstance(event, AnswerDone):
                answer = event.answer
        assert answer is not None
        return answer

    def ask_stream(
        self,
        question: str,
        top_k: int,
        options: AskOptions | None = None,
        collection: str | None = None,
        budget: TokenBudget | None = None,
        tenant: str | None = None,
    ) -> AsyncIterator[AnswerEvent]:
        """Screened `AnswerToken`s as the engine produces them, then one `AnswerDone` with the
        final answer (which replaces the streamed text when it is extractive). Search and
        option errors raise before the first event; closing the iterator cancels generation;
        a stream that starts to loop is cut. `budget` reserves prompt plus max_tokens before
        generating and is settled to the real usage however the generation ends."""
        return self._events(question, top_k, options or AskOptions(), "ask_stream", collection,
                            budget, tenant)  # fmt: skip

    @property
    def _context_chars(self) -> int:
        return self.settings.generator.max_context_chars

    def _without_generation(self, question: str, hits: list[Hit]) -> FinishedAnswer | None:
        """The answer when the model must not or cannot be asked: nothing relevant was
        retrieved (refuse), or there is no generator (quote the sources)."""
        if not self.policy.relevant(hits):
            return self.policy.refusal()
        if self.generator is None:
            return self.policy.extractive(question, hits, None, "", "the generator is disabled",
                                          "generator_disabled")  # fmt: skip
        return None

    def _degraded(self, question: str, hits: list[Hit], why: str, version: str) -> FinishedAnswer:
        self.metrics.degraded(why, version)
        return self.policy.extractive(question, hits, None, "error",
                                      f"{why}; quoting the retrieved sources instead",
                                      "generator_error")  # fmt: skip

    def _answer(
        self,
        finished: FinishedAnswer,
        hits: list[Hit],
        usage: Usage,
        start: float,
        version: str,
        status: Literal["ok", "degraded"] = "ok",
    ) -> Answer:
        """The domain answer, counted in the answer metrics."""
        if self.generator is None and finished.mode != "refused":
            status = "degraded"
        validation = finished.validation
        self.metrics.answer(finished.mode, version, finished.reason)
        if validation is not None:
            self.metrics.groundedness(validation.groundedness, version)
        return Answer(finished.text, hits, usage, _ms(start), status, finished.message,
                      finished.mode, finished.citations, validation, version,
                      finished.stop_reason)  # fmt: skip

    def _count_tokens(self, usage: Usage, since_first_token_ms: float, version: str) -> None:
        self.metrics.tokens(usage.prompt, usage.completion, version)
        if usage.completion > 1:  # time per output token after the first one
            self.metrics.per_output_token(since_first_token_ms / (usage.completion - 1), version)

    async def _events(
        self,
        question: str,
        top_k: int,
        options: AskOptions,
        route: str,
        collection: str | None,
        budget: TokenBudget | None,
        tenant: str | None = None,
    ) -> AsyncIterator[AnswerEvent]:
        start = time.perf_counter()
        template = self.policy.template(options.prompt_version)
        params = self.policy.decoding(template, options)
        shield = await self._shield(question, route, tenant)  # a 400 before anything else
        question = shield.question.text if shield else question
        hits = (await self.search(question, top_k, route, collection)).hits
        early = self._without_generation(question, hits)
        if early is not None:
            answer = _screened(self._answer(early, hits, Usage(), start, template.version), shield)
            yield AnswerToken(answer.text)
            yield AnswerDone(answer)
            return
        assert self.generator is not None  # _without_generation answered otherwise
        guard = StreamGuard(hits, self.policy.settings.validation, template)
        messages = template.render(question, hits, self._context_chars)
        messages = shield.protect(messages) if shield else messages
        run = GenerationRun(template, prompt_estimate=self.count_tokens(messages))
        if budget is not None:  # a 429 here comes before any answer text
            await budget.reserve(run.prompt_estimate + params.max_tokens)
        stream = self.generator.stream(messages, params)
        deadline = time.monotonic() + self.settings.generator.timeout_s
        try:
            while guard.stop_reason is None:
                try:
                    left = max(0.001, deadline - time.monotonic())
                    delta = await asyncio.wait_for(anext(stream), left)
                except StopAsyncIteration:
                    break
                run.deltas += 1
                safe = self._take(delta, guard, run, start)
                if shield is not None and shield.stream_leaks(delta.text):
                    break  # nothing of the leaking piece is sent; the answer becomes a refusal
                if safe:
                    yield AnswerToken(safe)
        except OverloadedError:
            if run.first_token_at is None:
                raise  # a 429 with Retry-After, before any answer was sent
            run.failure = "generation stopped: the engine is overloaded"
        except Exception as exc:
            run.failure = ("the generator timed out" if isinstance(exc, TimeoutError)
                           else f"the generator is unavailable ({type(exc).__name__})")  # fmt: skip
            failed = {"error": repr(exc)[:500], "prompt_version": template.version}
            log.warning("generation failed", extra=failed)
        finally:
            await aclose(stream)
            if budget is not None:  # also on error and when the client went away
                await budget.settle(run.charged())
        tail = guard.flush()
        if tail and guard.stop_reason is None:
            yield AnswerToken(tail)
        yield AnswerDone(_screened(self._finish(question, hits, guard, run, start, route), shield))

    async def _shield(self, question: str, route: str, tenant: str | None) -> GuardSession | None:
        """The guards of this generation (None without guards); GuardRefusalError when the
        question is refused. Off the event loop: the injection check runs the encoder."""
        if self.guards is None:
            return None
        path = "/" + route.replace("_", "/")
        return await asyncio.to_thread(self.guards.session, question, path, tenant)

    def _take(
        self, delta: GenerationDelta, guard: StreamGuard, run: GenerationRun, start: float
    ) -> str:
        """Account for one engine delta; return its screened text."""
        safe = ""
        if delta.text:
            if run.first_token_at is None:
                run.first_token_at = time.perf_counter()
                self.metrics.first_token((run.first_token_at - start) * 1000, run.version)
            safe = guard.feed(delta.text)
            run.stop_reason = guard.stop_reason or run.stop_reason
        if delta.completion_tokens is not None:
            run.usage = Usage(delta.prompt_tokens or 0, delta.completion_tokens)
        if delta.finish_reason and guard.stop_reason is None:
            run.stop_reason = delta.finish_reason
        return safe

    def _finish(
        self, question: str, hits: list[Hit], guard: StreamGuard, run: GenerationRun, start: float,
        route: str,
    ) -> Answer:  # fmt: skip
        """The checked answer of a finished (or failed, or cut) generation."""
        self.metrics.stage("generate", route, _ms(start))
        if run.first_token_at is not None:
            self._count_tokens(run.usage, _ms(run.first_token_at), run.version)
            self.generator_state = "ready"
        if run.failure and not guard.text.strip():
            finished = self._degraded(question, hits, run.failure, run.version)
            return self._answer(finished, hits, run.usage, start, run.version, "degraded")
        stop = "length" if run.failure else run.stop_reason
        finished = self.policy.finish(question, guard.text, hits, stop, run.template)
        if run.failure:
            finished = replace(finished, message=f"{run.failure}; {finished.message}".rstrip("; "))
        return self._answer(finished, hits, run.usage, start, run.version)


def _screened(answer: Answer, shield: GuardSession | None) -> Answer:
    """The answer after the output guards: a leak becomes a refusal, markup and PII go."""
    if shield is None:
        return answer
    screened = shield.answer(answer.text)
    if screened.leaked:
        return replace(answer, text=screened.text, mode="refused", citations=(),
                       message="refused: " + ", ".join(screened.reasons))  # fmt: skip
    return replace(answer, text=screened.text)
