"""Generating an answer with the engines: the variant's own first, the others as fallbacks
behind their circuit breakers, the retrieved sentences when every engine failed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Literal

from ragcore.answer_stream import StreamGuard
from ragcore.answering import AnswerPolicy, FinishedAnswer
from ragcore.engines import EngineChoice, EnginePool
from ragcore.generation_run import GenerationRun, aclose
from ragcore.guards.pipeline import GuardSession
from ragcore.metrics import MetricsSink, elapsed_ms
from ragcore.prompts import PromptTemplate
from ragcore.protocols import (
    Answer,
    AnswerPath,
    DecodingParams,
    GenerationDelta,
    Hit,
    Searcher,
    TokenBudget,
    Usage,
)
from ragcore.warmup import GeneratorWarmth
from utils.errors import OverloadedError
from utils.logs import get_logger
from utils.settings import RetrievalSettings, ServiceSettings
from utils.variant_settings import VariantSettings

log = get_logger("service")


@dataclass(frozen=True)
class Plan:
    """How one request is served: its variant's prompt, decoding, retrieval and searcher."""

    variant: VariantSettings
    template: PromptTemplate
    params: DecodingParams
    retrieval: RetrievalSettings
    k: int
    collection: str
    searcher: Searcher


class EngineRunner:
    """Runs one answer's generation over the engine pool and checks the result."""

    def __init__(
        self,
        engines: EnginePool,
        policy: AnswerPolicy,
        settings: ServiceSettings,
        metrics: MetricsSink,
        warmth: GeneratorWarmth,
        count_tokens: Callable[[list[dict[str, str]]], int],
    ) -> None:
        self.engines = engines
        self.policy = policy
        self.settings = settings
        self.metrics = metrics
        self.warmth = warmth
        self.count_tokens = count_tokens

    async def run(
        self,
        plan: Plan,
        question: str,
        hits: list[Hit],
        messages: list[dict[str, str]],
        shield: GuardSession | None,
        budget: TokenBudget | None,
        start: float,
        route: str,
    ) -> AsyncIterator[str | Answer]:
        """Screened answer text as it is generated, then the checked `Answer`. The variant's
        engine is tried first; one that fails before its first token (or whose circuit is
        open) passes the request to the next engine; when every engine failed, the answer
        quotes the sources. `budget` is reserved once and settled to what every attempt
        cost, however the generation ends."""
        prompt_estimate = self.count_tokens(messages)
        if budget is not None:  # a 429 here comes before any answer text
            await budget.reserve(prompt_estimate + plan.params.max_tokens)
        charged: list[Usage] = []
        run: GenerationRun | None = None
        try:
            for choice in self.engines.choices(plan.variant):
                if not choice.breaker.allow():
                    self.metrics.fallback(choice.name, "circuit_open")
                    continue
                run = GenerationRun(plan.template, prompt_estimate, engine=choice.name,
                                    fallback=choice.fallback)  # fmt: skip
                guard = StreamGuard(hits, self.policy.settings.validation, plan.template)
                try:
                    async for text in self._attempt(choice, messages, plan, guard, run, shield,
                                                    start):  # fmt: skip
                        yield text
                finally:
                    charged.append(run.charged())
                if not run.failure or run.first_token_at is not None:
                    break  # answered (or failed part-way: the partial answer is judged)
                self.metrics.fallback(choice.name, "failed")
                run = None
        finally:
            if budget is not None:  # also on error and when the client went away
                await budget.settle(Usage(sum(u.prompt for u in charged),
                                          sum(u.completion for u in charged)))  # fmt: skip
        if run is None:
            answer = self.all_failed(question, hits, plan, start)
        else:
            tail = guard.flush()
            if tail and guard.stop_reason is None:
                yield tail
            answer = self._finish(question, hits, guard, run, start, route, plan)
        yield answer

    async def _attempt(
        self,
        choice: EngineChoice,
        messages: list[dict[str, str]],
        plan: Plan,
        guard: StreamGuard,
        run: GenerationRun,
        shield: GuardSession | None,
        start: float,
    ) -> AsyncIterator[str]:
        """Stream one engine's answer; its failure is recorded in `run` and its breaker."""
        stream = choice.generator.stream(messages, plan.params)
        deadline = time.monotonic() + self.settings.engine_settings(choice.engine).timeout_s
        try:
            while guard.stop_reason is None:
                try:
                    left = max(0.001, deadline - time.monotonic())
                    delta = await asyncio.wait_for(anext(stream), left)
                except StopAsyncIteration:
                    break
                run.deltas += 1
                safe = self._take(delta, guard, run, start, plan.variant.name)
                if shield is not None and shield.stream_leaks(delta.text):
                    break  # nothing of the leaking piece is sent; the answer becomes a refusal
                if safe:
                    yield safe
            choice.breaker.success()
        except asyncio.CancelledError:
            choice.breaker.abandon()  # the client went away: not the engine's failure
            raise
        except OverloadedError:
            choice.breaker.abandon()
            if run.first_token_at is None:
                raise  # a 429 with Retry-After, before any answer was sent
            run.failure = "generation stopped: the engine is overloaded"
        except Exception as exc:
            choice.breaker.failure()
            run.failure = ("the generator timed out" if isinstance(exc, TimeoutError)
                           else f"the generator is unavailable ({type(exc).__name__})")  # fmt: skip
            log.warning("generation failed", extra={"error": repr(exc)[:500],
                                                    "engine": choice.name,
                                                    "variant": plan.variant.label})  # fmt: skip
        finally:
            await aclose(stream)

    def all_failed(
        self,
        question: str,
        hits: list[Hit],
        plan: Plan,
        start: float,
        why: str = "",
        usage: Usage | None = None,
    ) -> Answer:
        """Every engine failed or has its circuit open: quote the sources (`usage`: what the
        failed generation cost)."""
        if not why:
            opened = self.engines.states().get(plan.variant.engine) == "open"
            why = "the generator's circuit is open" if opened else "the generator is unavailable"
        self.metrics.degraded(why, plan.template.version, plan.variant.name)
        finished = self.policy.extractive(question, hits, None, "error",
                                          f"{why}; quoting the retrieved sources instead",
                                          "generator_error")  # fmt: skip
        return self.answer(finished, hits, usage or Usage(), start, plan, "fallback_extractive",
                           "", "degraded")  # fmt: skip

    def answer(
        self,
        finished: FinishedAnswer,
        hits: list[Hit],
        usage: Usage,
        start: float,
        plan: Plan,
        path: AnswerPath,
        engine: str,
        status: Literal["ok", "degraded"] = "ok",
    ) -> Answer:
        """The domain answer, counted in the answer metrics."""
        if not self.engines.engines and finished.mode != "refused":
            status = "degraded"
        validation = finished.validation
        version, variant = plan.template.version, plan.variant.name
        self.metrics.answer(finished.mode, version, finished.reason, variant)
        if validation is not None:
            self.metrics.groundedness(validation.groundedness, version, variant)
        return Answer(finished.text, hits, usage, elapsed_ms(start), status, finished.message,
                      finished.mode, finished.citations, validation, version,
                      finished.stop_reason, plan.variant.label, path, engine)  # fmt: skip

    def _take(
        self, delta: GenerationDelta, guard: StreamGuard, run: GenerationRun, start: float,
        variant: str,
    ) -> str:  # fmt: skip
        """Account for one engine delta; return its screened text."""
        safe = ""
        if delta.text:
            if run.first_token_at is None:
                run.first_token_at = time.perf_counter()
                self.metrics.first_token((run.first_token_at - start) * 1000, run.version,
                                         variant)  # fmt: skip
            safe = guard.feed(delta.text)
            run.stop_reason = guard.stop_reason or run.stop_reason
        if delta.completion_tokens is not None:
            run.usage = Usage(delta.prompt_tokens or 0, delta.completion_tokens)
        if delta.finish_reason and guard.stop_reason is None:
            run.stop_reason = delta.finish_reason
        return safe

    def _finish(
        self, question: str, hits: list[Hit], guard: StreamGuard, run: GenerationRun, start: float,
        route: str, plan: Plan,
    ) -> Answer:  # fmt: skip
        """The checked answer of a finished (or failed, or cut) generation."""
        self.metrics.stage("generate", route, elapsed_ms(start))
        variant = plan.variant.name
        if run.first_token_at is not None:
            self.metrics.tokens(run.usage.prompt, run.usage.completion, run.version, variant)
            if run.usage.completion > 1:  # time per output token after the first one
                per_token = elapsed_ms(run.first_token_at) / (run.usage.completion - 1)
                self.metrics.per_output_token(per_token, run.version, variant)
            if not run.fallback:
                self.warmth.state = "ready"
        if run.failure and not guard.text.strip():
            return self.all_failed(question, hits, plan, start, run.failure, run.usage)
        stop = "length" if run.failure else run.stop_reason
        finished = self.policy.finish(question, guard.text, hits, stop, run.template)
        if run.failure:
            finished = replace(finished, message=f"{run.failure}; {finished.message}".rstrip("; "))
        path: AnswerPath = "fallback_generator" if run.fallback else "generator"
        return self.answer(finished, hits, run.usage, start, plan, path, run.engine)
