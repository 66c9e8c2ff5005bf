"""One answer's making, for live and shadow requests alike: which searcher and settings a
variant reads a collection with, its plan (prompt, decoding, top_k), and the search and
generation that follow, with the output guards applied."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from ragcore.answering import AnswerPolicy, AskOptions, FinishedAnswer
from ragcore.engines import EnginePool
from ragcore.generation import EngineRunner, Plan
from ragcore.guards.pipeline import GuardSession
from ragcore.protocols import Answer, Hit, Searcher, SearchOutcome, TokenBudget, Usage
from ragcore.variants.experiments import Experiments
from utils.errors import IndexNotReadyError, RequestRejectedError
from utils.settings import RetrievalSettings, ServiceSettings
from utils.variant_settings import VariantSettings


@dataclass(frozen=True)
class Generated:
    """The end of a generation: the screened answer and the search that fed it."""

    answer: Answer
    outcome: SearchOutcome


class AnswerPipeline:
    """Plans and makes answers over the served collections (and the index versions variants
    pin), with the engines' runner."""

    def __init__(
        self,
        settings: ServiceSettings,
        policy: AnswerPolicy,
        collections: dict[str, Searcher],
        experiments: Experiments,
        engines: EnginePool,
        runner: EngineRunner,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.collections = collections
        self.pinned: dict[tuple[str, str], Searcher] = {}  # (collection, version) of variants
        self.experiments = experiments
        self.engines = engines
        self.runner = runner

    def searcher(
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
        name, searcher, retrieval = self.searcher(collection, variant)
        return Plan(variant, template, params, retrieval, top_k or retrieval.top_k, name,
                    searcher)  # fmt: skip

    async def generated(
        self,
        question: str,
        plan: Plan,
        shield: GuardSession | None,
        budget: TokenBudget | None,
        start: float,
        route: str,
        vector: Any,
    ) -> AsyncIterator[str | Generated]:
        """Search, then answer: text as it is generated, then a `Generated`."""
        outcome = await plan.searcher.search(question, plan.k, route, vector, plan.retrieval)
        hits = outcome.hits
        early = self.without_generation(question, hits)
        if early is not None:
            answer = self.runner.answer(early, hits, Usage(), start, plan, "none", "")
            yield answer.text
            yield Generated(screened(answer, shield), outcome)
            return
        messages = plan.template.render(question, hits, self.settings.generator.max_context_chars)
        messages = shield.protect(messages) if shield else messages
        final: Answer | None = None
        async for item in self.runner.run(plan, question, hits, messages, shield, budget, start,
                                          route):  # fmt: skip
            if isinstance(item, Answer):
                final = item
            else:
                yield item
        assert final is not None
        yield Generated(screened(final, shield), outcome)

    def without_generation(self, question: str, hits: list[Hit]) -> FinishedAnswer | None:
        """The answer when the model must not or cannot be asked: nothing relevant was
        retrieved (refuse), or there is no engine (quote the sources)."""
        if not self.policy.relevant(hits):
            return self.policy.refusal()
        if not self.engines.engines:
            return self.policy.extractive(question, hits, None, "", "the generator is disabled",
                                          "generator_disabled")  # fmt: skip
        return None


def screened(answer: Answer, shield: GuardSession | None) -> Answer:
    """The answer after the output guards: a leak becomes a refusal, markup and PII go."""
    if shield is None:
        return answer
    screened = shield.answer(answer.text)
    if screened.leaked:
        return replace(answer, text=screened.text, mode="refused", citations=(),
                       message="refused: " + ", ".join(screened.reasons))  # fmt: skip
    return replace(answer, text=screened.text)
