"""Search in one process: batched query embedding and batched retrieval, no remote hop."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from ragcore.batching import MicroBatcher
from ragcore.index_manager import IndexManager
from ragcore.metrics import MetricsSink, NullMetrics
from ragcore.protocols import Hit, QueryEmbedder, Readiness, SearchOutcome
from ragcore.retrieval import HybridRetriever, RetrievedChunk


@dataclass(frozen=True)
class _Query:
    text: str
    k: int


def to_hit(result: RetrievedChunk) -> Hit:
    """The service's view of a retrieved chunk."""
    chunk = result.chunk
    title = " > ".join(t for t in (chunk.page_title, chunk.section_title) if t)
    return Hit(chunk.text, chunk.source, round(result.score, 6), title, round(result.cosine, 4))


class SearchEngine:
    """The `Searcher` protocol over a query embedder and the process's live index.

    Concurrent searches share one embedding forward pass and one FAISS call (`MicroBatcher`);
    BM25 and fusion then run per query in the same worker thread, off the event loop."""

    def __init__(
        self,
        embedder: QueryEmbedder,
        index: IndexManager,
        max_batch_size: int,
        timeout_s: float,
        metrics: MetricsSink | None = None,
    ) -> None:
        self.embedder = embedder
        self.index = index
        self.timeout_s = timeout_s
        self.metrics = metrics or NullMetrics()
        self._batcher: MicroBatcher[_Query, SearchOutcome] = MicroBatcher(
            self._search_batch, max_batch_size
        )

    async def search(self, query: str, k: int, route: str = "search") -> SearchOutcome:
        """Top-k hits; IndexNotReadyError (503) when no usable index is loaded, TimeoutError
        (504) past `timeout_s`."""
        outcome = await asyncio.wait_for(self._batcher.submit(_Query(query, k)), self.timeout_s)
        if not outcome.hits:
            self.metrics.empty_retrieval(route)
        return outcome

    async def readiness(self) -> Readiness:
        return self.index.readiness()

    async def _search_batch(self, queries: list[_Query]) -> list[SearchOutcome]:
        # The index was checked against the query model when it was loaded (load_index).
        live = self.index.require_live()
        self.metrics.batch("search", len(queries))
        start = time.perf_counter()
        vectors = await self.embedder.embed_many([q.text for q in queries])
        embedded = time.perf_counter()
        outcomes = await asyncio.to_thread(self._retrieve, live, queries, vectors)
        done = time.perf_counter()
        for _ in queries:
            self.metrics.stage("embed", "search", (embedded - start) * 1000)
            self.metrics.stage("retrieve", "search", (done - embedded) * 1000)
        return outcomes

    @staticmethod
    def _retrieve(
        live: HybridRetriever, queries: list[_Query], vectors: np.ndarray
    ) -> list[SearchOutcome]:
        results = live.search_many([q.text for q in queries], vectors, [q.k for q in queries])
        return [SearchOutcome([to_hit(r) for r in hits], live.version) for hits in results]
