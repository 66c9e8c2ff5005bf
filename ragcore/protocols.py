"""The records the service exchanges and the interfaces of the parts it composes.

The plain `RAGService` and `SearchEngine` depend only on these, so they run with in-process
implementations in unit tests and with DeploymentHandle adapters inside Ray Serve.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from utils.settings import RetrievalSettings


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk as the service reports it."""

    content: str
    source: str
    score: float
    title: str = ""
    relevance: float = 0.0  # cosine similarity of chunk and query: the refusal signal

    @property
    def page_title(self) -> str:
        return self.title.split(" > ", 1)[0]

    @property
    def section(self) -> str:
        parts = self.title.split(" > ", 1)
        return parts[1] if len(parts) > 1 else ""


@dataclass(frozen=True)
class SearchOutcome:
    """Hits plus the index version that produced them."""

    hits: list[Hit]
    index_version: str
    vector: np.ndarray | None = None  # the query's embedding (the cache's semantic tier)


@dataclass(frozen=True)
class Readiness:
    """Whether a part can serve, and if not, why (shown by /readyz)."""

    ready: bool
    reason: str = ""
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Generation:
    """A finished completion with the engine's token counts."""

    text: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class GenerationDelta:
    """One streamed piece: text, and on the last piece the engine's token counts."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None


@dataclass(frozen=True)
class Usage:
    """Token counts reported by the engine for one answer."""

    prompt: int = 0
    completion: int = 0

    @property
    def total(self) -> int:
        return self.prompt + self.completion


@dataclass(frozen=True)
class DecodingParams:
    """What one generation is sampled with: settings, then the prompt version's defaults, then
    the request's own values within the server's limits."""

    max_tokens: int
    temperature: float = 0.0
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    stop: tuple[str, ...] = ()
    loop_ngram_tokens: int = 0
    loop_min_count: int = 3


@dataclass(frozen=True)
class Validation:
    """The checks an answer went through before leaving the service, with their scores."""

    passed: bool
    reasons: tuple[str, ...] = ()
    max_ngram_count: int = 0  # most repeats of one word n-gram (a loop repeats many)
    groundedness: float = 0.0  # share of sentences a retrieved chunk supports
    valid_citations: int = 0  # citations to retrieved sources in the final answer
    invalid_citations: int = 0  # numbers the model cited that were not retrieved
    urls_removed: int = 0  # URLs the model wrote that are not among the sources
    chars: int = 0


AnswerMode = Literal["generated", "extractive", "refused"]
# Which path produced the answer: the variant's engine, another engine after it failed, the
# extractive fallback after every engine failed, the cache, or none (refused, no generator).
AnswerPath = Literal["generator", "fallback_generator", "fallback_extractive", "cache", "none"]


@dataclass(frozen=True)
class Answer:
    """What /ask returns before the HTTP layer shapes it.

    `mode` says where the text comes from: the model (validated), the retrieved sentences
    themselves, or a refusal because nothing relevant was retrieved. `status` is "degraded"
    when the generator failed or is disabled. `citations` are 1-based numbers into
    `sources`, which hold everything retrieved, in prompt order."""

    text: str
    sources: list[Hit]
    usage: Usage
    latency_ms: float
    status: Literal["ok", "degraded"] = "ok"
    message: str = ""
    mode: AnswerMode = "generated"
    citations: tuple[int, ...] = ()
    validation: Validation | None = None
    prompt_version: str = ""
    stop_reason: str = ""
    variant: str = ""  # name@version of the variant that served it
    path: AnswerPath = "generator"
    engine: str = ""  # the engine that generated it ("" when none did)
    cache: Literal["", "exact", "semantic"] = ""
    tokens_saved: int = 0  # a cache hit: the tokens its first generation cost


@dataclass(frozen=True)
class AnswerToken:
    """A streamed piece of the answer text."""

    text: str


@dataclass(frozen=True)
class AnswerDone:
    """The last streamed event: the whole answer's sources, usage and status."""

    answer: Answer


AnswerEvent = AnswerToken | AnswerDone


class QueryEmbedder(Protocol):
    """Turns a batch of queries into unit vectors, one row per query."""

    model_name: str

    async def embed_many(self, texts: list[str]) -> np.ndarray: ...


class Searcher(Protocol):
    """Finds chunks for a query in the live index version."""

    async def search(
        self,
        query: str,
        k: int,
        route: str = "search",
        vector: np.ndarray | None = None,
        retrieval: RetrievalSettings | None = None,
    ) -> SearchOutcome: ...

    async def readiness(self) -> Readiness: ...

    def retrieval(self) -> RetrievalSettings: ...

    def live_version(self) -> str | None: ...

    async def embed(self, query: str) -> np.ndarray: ...


class Generator(Protocol):
    """Chat completion from an LLM engine, whole or streamed."""

    async def generate(
        self, messages: list[dict[str, str]], params: DecodingParams
    ) -> Generation: ...

    def stream(
        self, messages: list[dict[str, str]], params: DecodingParams
    ) -> AsyncIterator[GenerationDelta]: ...

    async def readiness(self) -> Readiness: ...


class TokenBudget(Protocol):
    """One request's token budget: reserve before generating, settle to the real usage after
    (always, also on error and disconnect)."""

    async def reserve(self, tokens: int) -> None:
        """Hold `tokens`, or raise RateLimitedError (429) / RequestRejectedError (422)."""
        ...

    async def settle(self, usage: Usage) -> None:
        """Replace the reservation with what was used."""
        ...
