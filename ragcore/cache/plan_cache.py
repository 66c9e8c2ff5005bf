"""The answer cache as the service uses it: one request's scope from its plan, a lookup that
hands the question's embedding on to the search, and the answer a hit becomes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ragcore.cache.answer_cache import AnswerCache, CacheHit
from ragcore.cache.keys import CacheScope
from ragcore.generation import Plan
from ragcore.metrics import elapsed_ms
from ragcore.protocols import Answer, Searcher, SearchOutcome, Usage
from utils.settings import ServiceSettings


class PlanCache:
    """Scopes, looks up and stores answers of plans in an `AnswerCache`."""

    def __init__(self, cache: AnswerCache, settings: ServiceSettings) -> None:
        self.cache = cache
        self.settings = settings

    def scope(self, plan: Plan, tenant: str | None, guards: str = "") -> CacheScope | None:
        """The cache scope of this request (`guards`: the guard fingerprint of its route and
        tenant); None when it must not be cached (no index yet)."""
        version = plan.searcher.live_version()
        if version is None:
            return None
        model = self.settings.engine_settings(plan.variant.engine).model_id
        return CacheScope(tenant or "", plan.collection, version, plan.variant.label, model,
                          plan.template.version, repr(plan.params),
                          plan.retrieval.model_dump_json(), plan.k, guards)  # fmt: skip

    async def exact(self, scope: CacheScope, question: str) -> CacheHit | None:
        """The exact tier alone."""
        return await self.cache.exact(scope, question)

    async def lookup(
        self, scope: CacheScope, question: str, searcher: Searcher, exact: bool = True
    ) -> tuple[CacheHit | None, Any]:
        """A cache hit, else None and the question's embedding (which the search reuses);
        `exact` False when the exact tier already missed for this question."""
        hit = await self.cache.exact(scope, question) if exact else None
        if hit is not None or not self.cache.settings.semantic:
            return hit, None
        vector = await searcher.embed(question)
        return await self.cache.semantic(scope, question, vector), vector

    def answer(self, hit: CacheHit, plan: Plan, start: float) -> Answer:
        """The answer a hit serves: marked as cached, with the tokens it saved."""
        stored = hit.answer
        return replace(stored, latency_ms=elapsed_ms(start), cache=hit.tier, path="cache",
                       usage=Usage(), tokens_saved=stored.usage.total,
                       variant=plan.variant.label)  # fmt: skip

    async def store(
        self, scope: CacheScope, outcome: SearchOutcome, question: str, answer: Answer
    ) -> None:
        """Keep a generated answer under the index version that produced it."""
        if answer.path != "generator" or answer.mode == "refused":
            return
        scope = replace(scope, index_version=outcome.index_version)
        await self.cache.put(scope, question, outcome.vector, answer)
