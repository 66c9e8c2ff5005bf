"""Interfaces of the three parts the RAG service composes, and the records they exchange.

The plain `RAGService` depends only on these, so it runs with in-process implementations in
unit tests and with DeploymentHandle adapters inside Ray Serve.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class QueryEmbedding:
    """A query vector and the model that produced it (checked against the index manifest)."""

    vector: np.ndarray
    model: str


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


class Embedder(Protocol):
    """Turns a query into a vector."""

    async def embed(self, text: str) -> QueryEmbedding: ...


class Retriever(Protocol):
    """Finds chunks for a query in the current index version."""

    async def search(self, query: str, embedding: QueryEmbedding, k: int) -> SearchOutcome: ...

    async def readiness(self) -> Readiness: ...


class Generator(Protocol):
    """Chat completion from an LLM engine, whole or streamed."""

    async def generate(self, messages: list[dict[str, str]], max_tokens: int) -> Generation: ...

    def stream(
        self, messages: list[dict[str, str]], max_tokens: int
    ) -> AsyncIterator[GenerationDelta]: ...

    async def readiness(self) -> Readiness: ...
