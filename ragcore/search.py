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
from ragcore.rerank import PairScorer, rerank_many
from ragcore.retrieval import HybridRetriever, RetrievedChunk
from ragcore.version_models import VersionModels
from utils.logs import get_logger
from utils.settings import RetrievalSettings

log = get_logger("search")


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
    BM25 and fusion then run per query in the same worker thread, off the event loop. A
    version trained with --adapt brings its own query embedder (its vectors live in that
    model's space) and reranker; the reranker reorders every query of a batch in one pass."""

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
        """The query's unit vector from the base model, which the cache compares questions
        with (`search` reuses it, unless the live version embeds queries with its own)."""
        vectors = await asyncio.wait_for(self.embedder.embed_many([query]), self.timeout_s)
        return np.asarray(vectors[0], dtype=np.float32)

    async def _search_batch(self, queries: list[_Query]) -> list[SearchOutcome]:
        # The index (and its own models) were checked against the query model when it was
        # loaded (load_index).
        live, models = self.index.require_state()
        self.metrics.batch("search", len(queries))
        start = time.perf_counter()
        vectors = await self._vectors(queries, models)
        embedded = time.perf_counter()
        chosen = [q.retrieval or live.settings for q in queries]  # a variant's, else ours
        candidates = self._rerank_candidates(models, chosen)
        depths = [max(q.k, n) for q, n in zip(queries, candidates, strict=True)]
        found = await asyncio.to_thread(self._retrieve, live, queries, vectors, depths)
        retrieved = time.perf_counter()
        reranking = any(candidates)  # only a version with a reranker has any
        if models.reranker is not None and reranking:
            found = await self._rerank(models.reranker, live, queries, found, candidates, chosen)
        done = time.perf_counter()
        for _ in queries:
            self.metrics.stage("embed", "search", (embedded - start) * 1000)
            self.metrics.stage("retrieve", "search", (retrieved - embedded) * 1000)
            if reranking:
                self.metrics.stage("rerank", "search", (done - retrieved) * 1000)
        # The outcome's vector is the base model's (None when the caller brought none and the
        # version embedded with its own model): the cache compares questions in that space.
        base = [q.vector for q in queries] if models.query_embedder else list(vectors)
        return [SearchOutcome([to_hit(r) for r in hits[: q.k]], live.version, vector)
                for q, hits, vector in zip(queries, found, base, strict=True)]  # fmt: skip

    async def _vectors(self, queries: list[_Query], models: VersionModels) -> np.ndarray:
        """One embedding row per query. With the version's own query embedder every query is
        embedded by it; else only the queries that bring no (base model) vector are."""
        if models.query_embedder is not None:
            return await models.query_embedder.embed_many([q.text for q in queries])
        missing = [q.text for q in queries if q.vector is None]
        fresh = iter(await self.embedder.embed_many(missing)) if missing else iter(())
        return np.vstack([q.vector if q.vector is not None else next(fresh) for q in queries])

    @staticmethod
    def _rerank_candidates(models: VersionModels, chosen: list[RetrievalSettings]) -> list[int]:
        """Per query, how many fused candidates the reranker reorders (0: not reranked)."""
        if models.reranker is None:
            return [0] * len(chosen)
        return [s.rerank_candidates if s.rerank else 0 for s in chosen]

    @staticmethod
    def _retrieve(
        live: HybridRetriever, queries: list[_Query], vectors: np.ndarray, depths: list[int]
    ) -> list[list[RetrievedChunk]]:
        return live.search_many([q.text for q in queries], vectors, depths,
                                overrides=[q.retrieval for q in queries])  # fmt: skip

    async def _rerank(
        self,
        reranker: PairScorer,
        live: HybridRetriever,
        queries: list[_Query],
        found: list[list[RetrievedChunk]],
        candidates: list[int],
        chosen: list[RetrievalSettings],
    ) -> list[list[RetrievedChunk]]:
        """The batch reranked in one pass; in fused order past the timeout or on an error (a
        search never fails for want of its reranker)."""
        titles = bool(live.published.manifest.get("prepend_titles", True))
        timeout = max(s.rerank_timeout_s for s in chosen)
        batch_size = min(s.rerank_batch_size for s in chosen)  # the tightest memory bound
        texts, ks = [q.text for q in queries], [q.k for q in queries]
        weights = [s.rerank_fused_weight for s in chosen]
        call = asyncio.to_thread(rerank_many, reranker, texts, found, ks, candidates, titles,
                                 batch_size, weights)  # fmt: skip
        try:
            reranked = await asyncio.wait_for(call, timeout)
        except TimeoutError:
            self.metrics.rerank("timeout")
            return found
        except Exception as exc:  # a broken reranker model: serve the fused order, say so
            log.error("rerank failed", extra={"error": repr(exc)[:300]})
            self.metrics.rerank("error")
            return found
        self.metrics.rerank("reranked")
        return reranked
