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
from utils.settings import RetrievalSettings


@dataclass(frozen=True)
class _Query:
    text: str
    k: int
    vector: np.ndarray | None = None  # embedded already (for the cache's semantic tier)
    retrieval: RetrievalSettings | None = None  # a variant's fusion settings


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

    async def search(
        self,
        query: str,
        k: int,
        route: str = "search",
        vector: np.ndarray | None = None,
        retrieval: RetrievalSettings | None = None,
    ) -> SearchOutcome:
        """Top-k hits; IndexNotReadyError (503) when no usable index is loaded, TimeoutError
        (504) past `timeout_s`. `vector`: the query's embedding when the caller has it."""
        job = _Query(query, k, vector, retrieval)
        outcome = await asyncio.wait_for(self._batcher.submit(job), self.timeout_s)
        if not outcome.hits:
            self.metrics.empty_retrieval(route)
        return outcome

    async def readiness(self) -> Readiness:
        return self.index.readiness()

    def retrieval(self) -> RetrievalSettings:
        """The fusion settings searches use now (the live index's, else the wanted ones)."""
        live = self.index.live
        return self.index.retrieval if live is None else live.settings

    def live_version(self) -> str | None:
        """The index version searches read now (None before one is loaded)."""
        live = self.index.live
        return None if live is None else live.version

    async def embed(self, query: str) -> np.ndarray:
        """The query's unit vector, as `search` would compute it."""
        vectors = await asyncio.wait_for(self.embedder.embed_many([query]), self.timeout_s)
        return np.asarray(vectors[0], dtype=np.float32)

    async def _search_batch(self, queries: list[_Query]) -> list[SearchOutcome]:
        # The index was checked against the query model when it was loaded (load_index).
        live = self.index.require_live()
        self.metrics.batch("search", len(queries))
        start = time.perf_counter()
        vectors = await self._vectors(queries)
        embedded = time.perf_counter()
        outcomes = await asyncio.to_thread(self._retrieve, live, queries, vectors)
        done = time.perf_counter()
        for _ in queries:
            self.metrics.stage("embed", "search", (embedded - start) * 1000)
            self.metrics.stage("retrieve", "search", (done - embedded) * 1000)
        return outcomes

    async def _vectors(self, queries: list[_Query]) -> np.ndarray:
        """One embedding row per query; only the queries that bring none are embedded."""
        missing = [q.text for q in queries if q.vector is None]
        fresh = iter(await self.embedder.embed_many(missing)) if missing else iter(())
        return np.vstack([q.vector if q.vector is not None else next(fresh) for q in queries])

    @staticmethod
    def _retrieve(
        live: HybridRetriever, queries: list[_Query], vectors: np.ndarray
    ) -> list[SearchOutcome]:
        results = live.search_many([q.text for q in queries], vectors, [q.k for q in queries],
                                   overrides=[q.retrieval for q in queries])  # fmt: skip
        return [SearchOutcome([to_hit(r) for r in hits], live.version, vector)
                for hits, vector in zip(results, vectors, strict=True)]  # fmt: skip
