"""The RAG logic, free of Ray and of HTTP: route to a variant, search, answer from the cache or
generate (with fallbacks), validate, degrade, warm up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from ragcore.answer_pipeline import AnswerPipeline, Generated
from ragcore.answering import AnswerPolicy, AskOptions
from ragcore.cache.answer_cache import AnswerCache, CacheHit
from ragcore.cache.keys import CacheScope
from ragcore.cache.plan_cache import PlanCache
from ragcore.embedding import start_request_vectors
from ragcore.engines import EnginePool
from ragcore.feedback.desk import FeedbackDesk
from ragcore.feedback.records import Feedback, FeedbackOutcome, answer_record, refusal_record
from ragcore.generation import EngineRunner, Plan
from ragcore.guards.pipeline import GuardPipeline, GuardSession
from ragcore.metrics import MetricsSink, NullMetrics, elapsed_ms
from ragcore.protocols import (
    Answer,
    AnswerDone,
    AnswerEvent,
    AnswerToken,
    Generator,
    Readiness,
    Searcher,
    SearchOutcome,
    TokenBudget,
)
from ragcore.token_count import byte_bound
from ragcore.variants.experiments import Experiments
from ragcore.variants.live_board import LiveBoard
from ragcore.variants.shadow import LiveResult, ShadowTraffic
from ragcore.warmup import GeneratorWarmth
from utils.errors import (
    GuardRefusalError,
    IndexNotReadyError,
    NotFoundError,
    OverloadedError,
    UnavailableError,
)
from utils.logs import get_logger, request_id_var
from utils.settings import ServiceSettings
from utils.variant_settings import DEFAULT_ENGINE, VariantSettings

log = get_logger("service")
# Errors that count against a variant (a canary is judged on them); a client's mistakes,
# refusals and limits do not.
SERVER_FAILURES = (UnavailableError, IndexNotReadyError, TimeoutError, OverloadedError)


@dataclass(frozen=True)
class Asked:
    """One /ask request as the service handles it."""

    question: str  # as asked; what is stored or logged is the screened one
    plan: Plan
    options: AskOptions
    top_k: int | None
    tenant: str | None
    route: str
    request_id: str

    @property
    def path(self) -> str:
        """The HTTP path the guard settings name ("ask_stream" is /ask/stream)."""
        return "/" + self.route.replace("_", "/")


class RAGService:
    """Answers search and ask requests from searchers, engines and an answer cache."""

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
        engines: Mapping[str, Generator] | None = None,
        cache: AnswerCache | None = None,
        experiments: Experiments | None = None,
        feedback: FeedbackDesk | None = None,
        shadows: ShadowTraffic | None = None,
    ) -> None:
        self.searcher = searcher
        # Every served collection by name; `searcher` is the default collection's.
        self.collections = {settings.default_collection: searcher, **(collections or {})}
        self.guards = guards
        self.policy = policy or AnswerPolicy(settings.answers, settings.generator)
        self.generator = generator
        self.settings = settings
        self.metrics = metrics or NullMetrics()
        named = {DEFAULT_ENGINE: generator} if generator is not None else {}
        self.engines = EnginePool({**named, **(engines or {})}, settings.breaker, self.metrics)
        self.cache = PlanCache(cache, settings) if cache is not None else None
        self.experiments = experiments or Experiments(settings.variants, metrics=self.metrics)
        self.feedback = feedback
        log_path = Path(settings.auth.state_dir) / settings.variants.shadow_log
        # Replicas publish their live traffic where they share canary rollbacks.
        board = LiveBoard(self.experiments.store, settings.variants)
        self.shadows = shadows or ShadowTraffic(settings.variants, log_path, self.metrics,
                                                searcher.embed, board=board)  # fmt: skip
        self.warmth = GeneratorWarmth(generator, settings.generator)
        self.runner = EngineRunner(self.engines, self.policy, settings, self.metrics,
                                   self.warmth, count_tokens)  # fmt: skip
        self.pipeline = AnswerPipeline(settings, self.policy, self.collections, self.experiments,
                                       self.engines, self.runner)  # fmt: skip
        self.pinned = self.pipeline.pinned

    def plan(
        self,
        variant: VariantSettings | None,
        options: AskOptions,
        top_k: int | None,
        collection: str | None,
    ) -> Plan:
        """How an answer is made by `variant` (None: the baseline)."""
        return self.pipeline.plan(variant, options, top_k, collection)

    @property
    def count_tokens(self) -> Callable[[list[dict[str, str]]], int]:
        """How a prompt's tokens are counted before it is sent (the budget's reservation)."""
        return self.runner.count_tokens

    @count_tokens.setter
    def count_tokens(self, count: Callable[[list[dict[str, str]]], int]) -> None:
        self.runner.count_tokens = count

    async def warm_up(self) -> None:
        """Warm the default engine (GeneratorWarmth.warm_up) and the feedback ledger up
        before /readyz turns 200."""
        feedback = self.feedback.warm_up() if self.feedback is not None else asyncio.sleep(0)
        await asyncio.gather(self.warmth.warm_up(self.policy), feedback)

    async def readiness(self) -> Readiness:
        """Ready when the index is loaded and the generator is warm (or disabled, or given up
        on: then /ask degrades to sources, which the details say)."""
        index = await self.searcher.readiness()
        details = {**index.details, "generator": await self.warmth.health()}
        for name, searcher in self.collections.items():
            if searcher is not self.searcher:
                state = await searcher.readiness()
                details[f"collection:{name}"] = state.details.get("index_version", state.reason)
        if self.feedback is not None:
            details["feedback"] = self.feedback.state
        if index.ready and self.warmth.state == "warming":
            return Readiness(False, "the generator is warming up", details)
        if index.ready and self.feedback is not None and self.feedback.state == "warming":
            return Readiness(False, "the feedback store is starting", details)
        return Readiness(index.ready, index.reason, details)

    async def search(
        self,
        query: str,
        k: int | None,
        route: str = "search",
        collection: str | None = None,
        variant: VariantSettings | None = None,
        tenant: str | None = None,
    ) -> SearchOutcome:
        """Top-k hits of a collection (None: the default) as `variant` retrieves them;
        IndexNotReadyError (503) when no usable index is loaded, RequestRejectedError (422)
        for a collection not served. A sampled copy may go to a shadow variant afterwards."""
        variant = variant or self.experiments.baseline()
        name, searcher, retrieval = self.pipeline.searcher(collection, variant)
        start = time.perf_counter()
        self.shadows.live_started()
        try:
            outcome = await searcher.search(query, k or retrieval.top_k, route, None, retrieval)
        finally:
            self.shadows.live_finished()
        shadows = self.shadows.variants(variant.label)
        if shadows:
            live = LiveResult(request_id_var.get(), tenant or "", route, self._loggable(query),
                              variant.label, outcome.hits, elapsed_ms(start))  # fmt: skip
        for shadow in shadows:
            run = partial(self._shadow_search, query, name, k, shadow, outcome)
            self.shadows.copy(shadow, run, live)
        return outcome

    async def _shadow_search(
        self, query: str, collection: str, k: int | None, variant: VariantSettings,
        live: SearchOutcome,
    ) -> SearchOutcome:  # fmt: skip
        _, searcher, retrieval = self.pipeline.searcher(collection, variant)
        return await searcher.search(query, k or retrieval.top_k, "shadow", live.vector,
                                     retrieval)  # fmt: skip

    def _loggable(self, text: str) -> str:
        """A search query as a log may hold it: PII redacted, or nothing without a redactor."""
        return self.guards.redacted(text) if self.guards is not None else ""

    async def ask(
        self,
        question: str,
        top_k: int | None,
        options: AskOptions | None = None,
        collection: str | None = None,
        budget: TokenBudget | None = None,
        tenant: str | None = None,
        variant: VariantSettings | None = None,
    ) -> Answer:
        """A validated, cited answer: from the cache, generated when it passes the checks,
        else extractive; refused when nothing relevant was retrieved. It is generated as a
        stream, so a loop is cut as it starts, as on /ask/stream. RequestRejectedError (422)
        for options the server does not allow; OverloadedError (429) when the engine is full;
        GuardRefusalError (400) when a guard refuses the question (`tenant` picks its guard
        settings and its cache)."""
        answer: Answer | None = None
        events = self._stream(question, top_k, options, collection, budget, tenant, variant, "ask")
        async for event in events:
            if isinstance(event, AnswerDone):
                answer = event.answer
        assert answer is not None
        return answer

    def ask_stream(
        self,
        question: str,
        top_k: int | None,
        options: AskOptions | None = None,
        collection: str | None = None,
        budget: TokenBudget | None = None,
        tenant: str | None = None,
        variant: VariantSettings | None = None,
    ) -> AsyncIterator[AnswerEvent]:
        """Screened `AnswerToken`s as the engine produces them, then one `AnswerDone` with the
        final answer (which replaces the streamed text when it is extractive). Search and
        option errors raise before the first event; closing the iterator cancels generation;
        a stream that starts to loop is cut. `budget` reserves prompt plus max_tokens before
        generating and is settled to the real usage however the generation ends."""
        return self._stream(question, top_k, options, collection, budget, tenant, variant,
                            "ask_stream")  # fmt: skip

    def _stream(
        self,
        question: str,
        top_k: int | None,
        options: AskOptions | None,
        collection: str | None,
        budget: TokenBudget | None,
        tenant: str | None,
        variant: VariantSettings | None,
        route: str,
    ) -> AsyncIterator[AnswerEvent]:
        options = options or AskOptions()
        plan = self.plan(variant, options, top_k, collection)
        asked = Asked(question, plan, options, top_k, tenant, route, request_id_var.get())
        return self._recorded(plan, self._events(asked, budget))

    async def _recorded(
        self, plan: Plan, events: AsyncIterator[AnswerEvent]
    ) -> AsyncIterator[AnswerEvent]:
        """The events, with the request's outcome counted for its variant (the canary check)
        and the request counted as live while it runs (shadow copies give way to it)."""
        start = time.perf_counter()
        self.shadows.live_started()
        try:
            async for event in events:
                if isinstance(event, AnswerDone):
                    answer = event.answer
                    failed = answer.path.startswith("fallback")
                    invalid = answer.validation is not None and not answer.validation.passed
                    self.experiments.record(plan.variant, failed, answer.latency_ms, invalid)
                yield event
        except SERVER_FAILURES:
            self.experiments.record(plan.variant, True, elapsed_ms(start), False)
            raise
        finally:
            self.shadows.live_finished()

    async def _events(self, asked: Asked, budget: TokenBudget | None
                      ) -> AsyncIterator[AnswerEvent]:  # fmt: skip
        start = time.perf_counter()
        start_request_vectors()  # the guard and the cache lookup embed the question once
        plan = asked.plan
        scope = self._cache_scope(asked)
        cleared = None
        if scope is not None and self.guards is not None and self.cache is not None:
            # An exact hit is served before the injection check (GuardPipeline.cleared).
            cleared = self.guards.cleared(asked.question, asked.path, asked.tenant)
            hit = await self.cache.exact(scope, asked.question) if cleared else None
            if hit is not None:
                for event in self._served(asked, asked.question, hit, cleared, None, start):
                    yield event
                return
        shield = await self._shield(asked)  # a 400 before anything else
        question = shield.question.text if shield else asked.question
        vector = None
        if self.cache is not None and scope is not None:
            tried = cleared is not None and question == asked.question
            hit, vector = await self.cache.lookup(scope, question, plan.searcher, not tried)
            if hit is not None:
                for event in self._served(asked, question, hit, shield, vector, start):
                    yield event
                return
        final: Generated | None = None
        making = self.pipeline.generated(question, plan, shield, budget, start, asked.route,
                                         vector)  # fmt: skip
        async for item in making:
            if isinstance(item, Generated):
                final = item
            else:
                yield AnswerToken(item)
        assert final is not None
        answer = final.answer
        if self.cache is not None and scope is not None and not (shield and shield.question.flags):
            # Stored before the answer is sent: the next request, on any replica, finds it.
            # Never a flagged question's: a hit skips the guards that flagged it.
            await self.cache.store(scope, final.outcome, question, answer)
        yield self._done(asked, question, answer, shield, final.outcome.vector)

    def _cache_scope(self, asked: Asked) -> CacheScope | None:
        """The request's cache scope, with the fingerprint of the guards it passes."""
        if self.cache is None:
            return None
        guards = self.guards.fingerprint(asked.path, asked.tenant) if self.guards else ""
        return self.cache.scope(asked.plan, asked.tenant, guards)

    def _served(self, asked: Asked, question: str, hit: CacheHit, shield: GuardSession | None,
                vector: Any, start: float) -> list[AnswerEvent]:  # fmt: skip
        """The events of an answer served from the cache."""
        assert self.cache is not None
        answer = self.cache.answer(hit, asked.plan, start)
        return [AnswerToken(answer.text), self._done(asked, question, answer, shield, vector)]

    def _done(self, asked: Asked, question: str, answer: Answer, shield: GuardSession | None,
              vector: Any) -> AnswerDone:  # fmt: skip
        """The last event: the answer is recorded for feedback and copied to shadows."""
        if self.feedback is not None:
            self.feedback.answered(answer_record(
                asked.request_id, asked.tenant or "", asked.route, asked.plan.collection,
                question, answer, self.settings.feedback))  # fmt: skip
        shadows = self.shadows.variants(answer.variant)
        if shadows:
            live = LiveResult(asked.request_id, asked.tenant or "", asked.route, question,
                              answer.variant, answer.sources, answer.latency_ms, answer.text,
                              answer.path)  # fmt: skip
        for variant in shadows:
            run = partial(self._shadow_answer, asked, question, variant, shield, vector)
            self.shadows.copy(variant, run, live)
        return AnswerDone(answer)

    async def _shadow_answer(self, asked: Asked, question: str, variant: VariantSettings,
                             shield: GuardSession | None, vector: Any) -> Answer:  # fmt: skip
        """The shadow variant's answer to a screened question: no cache, no budget, no
        canary record, and its own guard session."""
        plan = self.plan(variant, asked.options, asked.top_k, asked.plan.collection)
        session = shield.renewed() if shield is not None else None
        making = self.pipeline.generated(question, plan, session, None, time.perf_counter(),
                                         "shadow", vector)  # fmt: skip
        async for item in making:
            if isinstance(item, Generated):
                return item.answer
        raise RuntimeError("the shadow generation ended without an answer")

    async def rate(self, feedback: Feedback) -> FeedbackOutcome:
        """Store a user's rating of an answer (FeedbackDesk.rate), its comment's PII redacted;
        NotFoundError (404) when feedback is disabled or the tenant has no such answer."""
        if self.feedback is None:
            raise NotFoundError("feedback is disabled on this service (feedback.enabled: false)")
        if self.guards is not None and feedback.comment:
            comment = await asyncio.to_thread(self.guards.redacted, feedback.comment)
            feedback = replace(feedback, comment=comment)
        return await self.feedback.rate(feedback)

    async def _shield(self, asked: Asked) -> GuardSession | None:
        """The guards of this generation (None without guards); GuardRefusalError when the
        question is refused (recorded for review). Off the event loop: the injection check
        runs the encoder."""
        if self.guards is None:
            return None
        try:
            return await asyncio.to_thread(self.guards.session, asked.question, asked.path,
                                           asked.tenant)  # fmt: skip
        except GuardRefusalError as exc:
            if self.feedback is not None:
                question = await asyncio.to_thread(self.guards.redacted, asked.question)
                plan = asked.plan
                self.feedback.answered(refusal_record(
                    asked.request_id, asked.tenant or "", asked.route, plan.collection,
                    plan.variant.label, question, exc.reason, self.settings.feedback))  # fmt: skip
            raise
