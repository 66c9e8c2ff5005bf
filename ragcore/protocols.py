"""The records the service exchanges and the interfaces of the parts it composes.

The plain `RAGService` and `SearchEngine` depend only on these, so they run with in-process
implementations in unit tests and with DeploymentHandle adapters inside Ray Serve.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk as the service reports it."""

    content: str
    source: str
    score: float
    title: str = ""


@dataclass(frozen=True)
class SearchOutcome:
    """Hits plus the index version that produced them."""

    hits: list[Hit]
    index_version: str


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


@dataclass(frozen=True)
class Usage:
    """Token counts reported by the engine for one answer."""

    prompt: int = 0
    completion: int = 0

    @property
    def total(self) -> int:
        return self.prompt + self.completion


@dataclass(frozen=True)
class Answer:
    """What /ask returns before the HTTP layer shapes it. `status` is "degraded" when the
    answer carries sources but no generated text (the generator failed or is disabled)."""

    text: str
    sources: list[Hit]
    usage: Usage
    latency_ms: float
    status: Literal["ok", "degraded"] = "ok"
    message: str = ""


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

    async def search(self, query: str, k: int, route: str = "search") -> SearchOutcome: ...

    async def readiness(self) -> Readiness: ...


class Generator(Protocol):
    """Chat completion from an LLM engine, whole or streamed."""

    async def generate(self, messages: list[dict[str, str]], max_tokens: int) -> Generation: ...

    def stream(
        self, messages: list[dict[str, str]], max_tokens: int
    ) -> AsyncIterator[GenerationDelta]: ...

    async def readiness(self) -> Readiness: ...
