"""The RAG logic, free of Ray and of HTTP: route to a variant, search, answer from the cache or
generate (with fallbacks), validate, degrade, warm up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from typing import Any

from ragcore.answering import AnswerPolicy, AskOptions, FinishedAnswer
from ragcore.cache.answer_cache import AnswerCache, CacheHit
from ragcore.cache.keys import CacheScope
from ragcore.engines import EnginePool
from ragcore.generation import EngineRunner, Plan
from ragcore.guards.pipeline import GuardPipeline, GuardSession
from ragcore.metrics import MetricsSink, NullMetrics, elapsed_ms
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
    TokenBudget,
    Usage,
)
from ragcore.token_count import byte_bound
from ragcore.variants.experiments import Experiments
from ragcore.warmup import GeneratorWarmth
from utils.errors import (
    IndexNotReadyError,
    OverloadedError,
    RequestRejectedError,
    UnavailableError,
)
from utils.logs import get_logger
from utils.settings import RetrievalSettings, ServiceSettings
from utils.variant_settings import DEFAULT_ENGINE, VariantSettings

log = get_logger("service")
# Errors that count against a variant (a canary is judged on them); a client's mistakes,
# refusals and limits do not.
SERVER_FAILURES = (UnavailableError, IndexNotReadyError, TimeoutError, OverloadedError)


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
    ) -> None:
        self.searcher = searcher
        # Every served collection by name; `searcher` is the default collection's.
        self.collections = {settings.default_collection: searcher, **(collections or {})}
        self.pinned: dict[tuple[str, str], Searcher] = {}  # (collection, version) of variants
        self.guards = guards
        self.policy = policy or AnswerPolicy(settings.answers, settings.generator)
        self.generator = generator
        self.settings = settings
        self.metrics = metrics or NullMetrics()
        named = {DEFAULT_ENGINE: generator} if generator is not None else {}
        self.engines = EnginePool({**named, **(engines or {})}, settings.breaker, self.metrics)
        self.cache = cache
        self.experiments = experiments or Experiments(settings.variants, metrics=self.metrics)
        self.warmth = GeneratorWarmth(generator, settings.generator)
        self.runner = EngineRunner(self.engines, self.policy, settings, self.metrics,
                                   self.warmth, count_tokens)  # fmt: skip

    @property
    def count_tokens(self) -> Callable[[list[dict[str, str]]], int]:
        """How a prompt's tokens are counted before it is sent (the budget's reservation)."""
        return self.runner.count_tokens

    @count_tokens.setter
    def count_tokens(self, count: Callable[[list[dict[str, str]]], int]) -> None:
        self.runner.count_tokens = count

    async def warm_up(self) -> None:
        """Warm the default engine up before /readyz turns 200 (GeneratorWarmth.warm_up)."""
        await self.warmth.warm_up(self.policy)

    async def readiness(self) -> Readiness:
        """Ready when the index is loaded and the generator is warm (or disabled, or given up
        on: then /ask degrades to sources, which the details say)."""
        index = await self.searcher.readiness()
        details = {**index.details, "generator": await self.warmth.health()}
        for name, searcher in self.collections.items():
            if searcher is not self.searcher:
                state = await searcher.readiness()
                details[f"collection:{name}"] = state.details.get("index_version", state.reason)
        if index.ready and self.warmth.state == "warming":
            return Readiness(False, "the generator is warming up", details)
        return Readiness(index.ready, index.reason, details)

    def _searcher(
        self, collection: str | None, variant: VariantSettings
    ) -> tuple[str, Searcher, RetrievalSettings]:
        """The collection's name, the searcher `variant` reads it with, and the retrieval
        settings it searches with: the variant's overrides over the live index's own (which
        the Ingress's `user_config` may have changed)."""
        name = collection or self.settings.default_collection
        if name not in self.collections:
            raise RequestRejectedError(f"collection '{name}' is not served here; "
                                       f"served: {', '.join(self.collections)}")  # fmt: skip
        pin = variant.index_versions.get(name)
        searcher = self.collections[name] if pin is None else self.pinned.get((name, pin))
        if searcher is None:
            raise IndexNotReadyError(f"variant {variant.name} pins index version {pin} of "
                                     f"collection {name}, which is not loaded")  # fmt: skip
        return name, searcher, self.settings.variant_retrieval(variant, searcher.retrieval())

    def plan(
        self,
        variant: VariantSettings | None,
        options: AskOptions,
        top_k: int | None,
        collection: str | None,
    ) -> Plan:
        """How an answer is made by `variant` (None: the baseline)."""
        variant = variant or self.experiments.baseline()
        template = self.policy.template(options.prompt_version or variant.prompt_version)
        params = self.policy.decoding(template, options, variant.decoding)
        name, searcher, retrieval = self._searcher(collection, variant)
        return Plan(variant, template, params, retrieval, top_k or retrieval.top_k, name,
                    searcher)  # fmt: skip

    async def search(
        self,
        query: str,
        k: int | None,
        route: str = "search",
        collection: str | None = None,
        variant: VariantSettings | None = None,
    ) -> SearchOutcome:
        """Top-k hits of a collection (None: the default) as `variant` retrieves them;
        IndexNotReadyError (503) when no usable index is loaded, RequestRejectedError (422)
        for a collection not served."""
        _, searcher, retrieval = self._searcher(collection, variant or self.experiments.baseline())
        return await searcher.search(query, k or retrieval.top_k, route, None, retrieval)

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
        plan = self.plan(variant, options or AskOptions(), top_k, collection)
        return self._recorded(plan, self._events(question, plan, budget, tenant, route))

    async def _recorded(
        self, plan: Plan, events: AsyncIterator[AnswerEvent]
    ) -> AsyncIterator[AnswerEvent]:
        """The events, with the request's outcome counted for its variant (the canary check)."""
        start = time.perf_counter()
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

    def _scope(self, plan: Plan, tenant: str | None) -> CacheScope | None:
        """The cache scope of this request; None when it must not be cached."""
        version = plan.searcher.live_version()
        if self.cache is None or version is None:
            return None
        model = self.settings.engine_settings(plan.variant.engine).model_id
        return CacheScope(tenant or "", plan.collection, version, plan.variant.label, model,
                          plan.template.version, repr(plan.params),
                          plan.retrieval.model_dump_json(), plan.k)  # fmt: skip

    async def _cached(
        self, scope: CacheScope, question: str, searcher: Searcher
    ) -> tuple[CacheHit | None, Any]:
        """A cache hit, else None and the question's embedding (which the search reuses)."""
        assert self.cache is not None
        hit = await self.cache.exact(scope, question)
        if hit is not None or not self.cache.settings.semantic:
            return hit, None
        vector = await searcher.embed(question)
        return await self.cache.semantic(scope, question, vector), vector

    def _from_cache(self, hit: CacheHit, plan: Plan, start: float) -> Answer:
        stored = hit.answer
        return replace(stored, latency_ms=elapsed_ms(start), cache=hit.tier, path="cache",
                       usage=Usage(), tokens_saved=stored.usage.total,
                       variant=plan.variant.label)  # fmt: skip

    async def _events(
        self,
        question: str,
        plan: Plan,
        budget: TokenBudget | None,
        tenant: str | None,
        route: str,
    ) -> AsyncIterator[AnswerEvent]:
        start = time.perf_counter()
        shield = await self._shield(question, route, tenant)  # a 400 before anything else
        question = shield.question.text if shield else question
        scope = self._scope(plan, tenant)
        vector = None
        if scope is not None:
            hit, vector = await self._cached(scope, question, plan.searcher)
            if hit is not None:
                answer = self._from_cache(hit, plan, start)
                yield AnswerToken(answer.text)
                yield AnswerDone(answer)
                return
        outcome = await plan.searcher.search(question, plan.k, route, vector, plan.retrieval)
        hits = outcome.hits
        early = self._without_generation(question, hits)
        if early is not None:
            answer = self.runner.answer(early, hits, Usage(), start, plan, "none", "")
            yield AnswerToken(answer.text)
            yield AnswerDone(_screened(answer, shield))
            return
        messages = plan.template.render(question, hits, self.settings.generator.max_context_chars)
        messages = shield.protect(messages) if shield else messages
        final: Answer | None = None
        async for item in self.runner.run(plan, question, hits, messages, shield, budget, start,
                                          route):  # fmt: skip
            if isinstance(item, Answer):
                final = item
            else:
                yield AnswerToken(item)
        assert final is not None
        answer = _screened(final, shield)
        if scope is not None and answer.path == "generator" and answer.mode != "refused":
            # Stored before the answer is sent: the next request, on any replica, finds it.
            await self._store(scope, outcome, question, answer)
        yield AnswerDone(answer)

    async def _store(
        self, scope: CacheScope, outcome: SearchOutcome, question: str, answer: Answer
    ) -> None:
        assert self.cache is not None
        scope = replace(scope, index_version=outcome.index_version)  # what produced it
        await self.cache.put(scope, question, outcome.vector, answer)

    def _without_generation(self, question: str, hits: list[Hit]) -> FinishedAnswer | None:
        """The answer when the model must not or cannot be asked: nothing relevant was
        retrieved (refuse), or there is no engine (quote the sources)."""
        if not self.policy.relevant(hits):
            return self.policy.refusal()
        if not self.engines.engines:
            return self.policy.extractive(question, hits, None, "", "the generator is disabled",
                                          "generator_disabled")  # fmt: skip
        return None

    async def _shield(self, question: str, route: str, tenant: str | None) -> GuardSession | None:
        """The guards of this generation (None without guards); GuardRefusalError when the
        question is refused. Off the event loop: the injection check runs the encoder."""
        if self.guards is None:
            return None
        path = "/" + route.replace("_", "/")
        return await asyncio.to_thread(self.guards.session, question, path, tenant)


def _screened(answer: Answer, shield: GuardSession | None) -> Answer:
    """The answer after the output guards: a leak becomes a refusal, markup and PII go."""
    if shield is None:
        return answer
    screened = shield.answer(answer.text)
    if screened.leaked:
        return replace(answer, text=screened.text, mode="refused", citations=(),
                       message="refused: " + ", ".join(screened.reasons))  # fmt: skip
    return replace(answer, text=screened.text)
