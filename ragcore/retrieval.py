"""Hybrid retrieval over a published index: dense FAISS + BM25, fused by reciprocal rank.

This is the one retrieval implementation: the service and the evaluation harness both call
`HybridRetriever.search_many` (or `search` for one query).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np

from ragcore.bm25 import BM25Index
from ragcore.documents import Chunk
from ragcore.index_format import PublishedIndex
from utils.settings import RetrievalSettings

Mode = Literal["dense", "lexical", "hybrid"]
_WORD_RE = re.compile(r"\w+")


@dataclass(frozen=True)
class RetrievedChunk:
    """A search hit: the chunk, its fused score and the rank of each leg that found it."""

    chunk: Chunk
    score: float
    dense_rank: int | None = None
    lexical_rank: int | None = None
    cosine: float = 0.0  # query-chunk similarity, whichever leg found it (0.0: no vector)


@dataclass
class _Candidate:
    dense_rank: int | None = None
    lexical_rank: int | None = None
    cosine: float = 0.0
    fused: float = 0.0


def _flat_vectors(index: faiss.Index) -> np.ndarray | None:
    """A zero-copy (ntotal, d) view of a flat inner-product index's vectors, else None."""
    if not isinstance(index, faiss.IndexFlatIP) or index.ntotal == 0:
        return None
    flat = faiss.rev_swig_ptr(index.get_xb(), index.ntotal * index.d)
    return np.asarray(flat).reshape(index.ntotal, index.d)


def _exact_top_n(queries: np.ndarray, vectors: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top `n` per query, best first: one BLAS matrix product for the
    batch (measured on the 24k-chunk Ray docs index, one thread: 0.41 ms per query in
    batches of 32, against 1.25 ms for FAISS's flat search; bench/retrieval_legs.py)."""
    scores = queries @ vectors.T
    top = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    return np.take_along_axis(top_scores, order, axis=1), np.take_along_axis(top, order, axis=1)


def normalize_query(query: str) -> str:
    """Collapse whitespace and strip; the query text used by both legs."""
    return " ".join(query.split())


class HybridRetriever:
    """Dense + BM25 retrieval with reciprocal rank fusion over one published index."""

    def __init__(self, published: PublishedIndex, settings: RetrievalSettings) -> None:
        # Searches run one batch at a time on the caller's thread: FAISS's OpenMP fan-out costs
        # more than it saves (measured on the 19k-chunk Ray docs index: 15 ms per flat search
        # with 2 threads, 2 ms with 1), and its idle threads spin on the other core.
        faiss.omp_set_num_threads(1)
        self.published = published
        self.settings = settings
        titles = bool(published.manifest.get("prepend_titles", True))
        self.bm25 = BM25Index(
            [c.embed_text(titles) for c in published.chunks], settings.bm25_k1, settings.bm25_b
        )
        # Normalised once here, not per candidate per query: what `dedupe` compares.
        self._dedupe_keys = [" ".join(_WORD_RE.findall(c.text.lower())) for c in published.chunks]
        self._flat_vectors = _flat_vectors(published.index)

    @property
    def version(self) -> str:
        return self.published.version

    def _dense(self, vectors: np.ndarray, n: int) -> list[list[tuple[int, float]]]:
        """Top `n` rows per query vector, one call for the whole batch."""
        matrix = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        n = min(n, self.published.index.ntotal)
        if self._flat_vectors is not None:
            scores, rows = _exact_top_n(matrix, self._flat_vectors, n)
        else:
            scores, rows = self.published.index.search(matrix, n)
        return [
            [(int(r), float(s)) for r, s in zip(row, score, strict=True) if r >= 0]
            for row, score in zip(rows, scores, strict=True)
        ]

    def search(
        self, query: str, vector: np.ndarray | None, k: int | None = None, mode: Mode | None = None
    ) -> list[RetrievedChunk]:
        """Top `k` chunks for one query; `vector` is its embedding (needed unless lexical)."""
        vectors = None if vector is None else np.atleast_2d(vector)
        return self.search_many([query], vectors, [k or self.settings.top_k], mode)[0]

    def search_many(
        self,
        queries: list[str],
        vectors: np.ndarray | None,
        ks: list[int],
        mode: Mode | None = None,
        overrides: list[RetrievalSettings | None] | None = None,
    ) -> list[list[RetrievedChunk]]:
        """Top `ks[i]` chunks for each query; `vectors` holds one embedding row per query;
        `overrides[i]` replaces the fusion settings of query i (a variant's; BM25's k1 and b
        stay the index's)."""
        per_query = [o or self.settings for o in (overrides or [None] * len(queries))]
        depth = max(*(s.candidates for s in per_query), *ks)
        dense: list[list[tuple[int, float]]] = [[] for _ in queries]
        if vectors is not None and any((mode or s.mode) != "lexical" for s in per_query):
            dense = self._dense(vectors, depth)
        rows = [None] * len(queries) if vectors is None else list(np.atleast_2d(vectors))
        results = []
        for query, hits, k, vector, s in zip(queries, dense, ks, rows, per_query, strict=True):
            leg_mode = mode or s.mode
            own = hits[: max(s.candidates, k)] if leg_mode != "lexical" else []
            results.append(self._fuse(query, own, k, leg_mode, vector, s))
        return results

    def _cosine(self, row: int, vector: np.ndarray) -> float:
        """The query's cosine with one chunk (the vectors are unit length)."""
        if self._flat_vectors is not None:
            chunk_vector = self._flat_vectors[row]
        else:
            chunk_vector = self.published.index.reconstruct(row)
        return float(chunk_vector @ np.asarray(vector, dtype=np.float32).ravel())

    def _fuse(
        self,
        query: str,
        dense: list[tuple[int, float]],
        k: int,
        mode: Mode,
        vector: np.ndarray | None,
        s: RetrievalSettings,
    ) -> list[RetrievedChunk]:
        candidates: dict[int, _Candidate] = {}
        for rank, (row, cosine) in enumerate(dense, start=1):
            candidates[row] = _Candidate(rank, None, cosine, s.dense_weight / (s.rrf_k + rank))
        if mode != "dense":
            depth = max(s.candidates, k)
            for rank, (row, _) in enumerate(self.bm25.search(normalize_query(query), depth), 1):
                candidate = candidates.setdefault(row, _Candidate())
                candidate.lexical_rank = rank
                candidate.fused += s.lexical_weight / (s.rrf_k + rank)
            if s.page_bonus:
                self._add_page_bonus(candidates, s.page_bonus)
        return self._diversify(candidates, k, mode, vector, s)

    def _add_page_bonus(self, candidates: dict[int, _Candidate], bonus: float) -> None:
        # A page that several candidates come from is likelier the answer than a page with
        # one: each chunk gains a share of its page's other candidates' scores.
        chunks = self.published.chunks
        page_sum: defaultdict[str, float] = defaultdict(float)
        for row, cand in candidates.items():
            page_sum[chunks[row].page_url] += cand.fused
        for row, cand in candidates.items():
            cand.fused += bonus * (page_sum[chunks[row].page_url] - cand.fused)

    def _diversify(
        self,
        candidates: dict[int, _Candidate],
        k: int,
        mode: Mode,
        vector: np.ndarray | None,
        s: RetrievalSettings,
    ) -> list[RetrievedChunk]:
        """Best first, at most `max_per_page` per page, repeated texts dropped. Each result
        carries its cosine with `vector`, whichever leg found it: relevance must not depend
        on the leg (a chunk only BM25 found gets its cosine here)."""
        key = (lambda c: c.cosine) if mode == "dense" else (lambda c: c.fused)
        results: list[RetrievedChunk] = []
        per_page: Counter[str] = Counter()
        seen: set[str] = set()
        for row, cand in sorted(candidates.items(), key=lambda item: -key(item[1])):
            chunk = self.published.chunks[row]
            if s.max_per_page and per_page[chunk.page_url] >= s.max_per_page:
                continue
            if s.dedupe:
                # Docs repeat boilerplate across pages; a repeat adds no new evidence.
                text = self._dedupe_keys[row]
                if text in seen:
                    continue
                seen.add(text)
            per_page[chunk.page_url] += 1
            cosine = cand.cosine
            if cand.dense_rank is None and vector is not None:
                cosine = self._cosine(row, vector)
            results.append(RetrievedChunk(chunk, key(cand), cand.dense_rank, cand.lexical_rank,
                                          cosine))  # fmt: skip
            if len(results) >= k:
                break
        return results
