"""Query embedder: one model per replica; concurrent queries share a forward pass."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from ray import serve

from deployments.protocols import QueryEmbedding
from pipelines.embed import SentenceEmbedder
from utils.logs import setup_logging
from utils.settings import ServiceSettings


class QueryEmbedder:
    """Plain embedder for queries (the index's chunks are embedded by the build job)."""

    def __init__(self, model_name: str, num_threads: int | None = None) -> None:
        self.model_name = model_name
        self._embedder = SentenceEmbedder(model_name, num_threads=num_threads)

    def embed_many(self, texts: list[str]) -> list[QueryEmbedding]:
        """One forward pass for all texts."""
        vectors = self._embedder.embed(texts, batch_size=max(len(texts), 1))
        return [QueryEmbedding(np.asarray(v), self.model_name) for v in vectors]

    async def embed(self, text: str) -> QueryEmbedding:
        """The `Embedder` protocol, for in-process use."""
        return (await asyncio.to_thread(self.embed_many, [text]))[0]


@serve.deployment(name="Embedder")
class EmbedderDeployment:
    """Serve wrapper with `@serve.batch`: queries arriving together are embedded together."""

    def __init__(self, settings: dict[str, Any]) -> None:
        setup_logging()
        config = ServiceSettings.model_validate(settings)
        self.embedder = QueryEmbedder(config.embedding_model, num_threads=config.embed_threads)
        batcher: Any = self.embed_batch
        batcher.set_max_batch_size(config.embed_max_batch_size)
        batcher.set_batch_wait_timeout_s(config.embed_batch_wait_s)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def embed_batch(self, texts: list[str]) -> list[QueryEmbedding]:
        # The forward pass runs in a thread so the replica keeps accepting (and batching) calls.
        return await asyncio.to_thread(self.embedder.embed_many, texts)

    async def embed(self, text: str) -> QueryEmbedding:
        return await self.embed_batch(text)
