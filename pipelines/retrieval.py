"""Hybrid retrieval over a published index: dense FAISS + BM25, fused by reciprocal rank.

This is the one retrieval implementation: the Serve retriever deployment and the evaluation
harness both call `HybridRetriever.search`.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np
from scipy import sparse

from pipelines.documents import Chunk
from pipelines.index_store import PublishedIndex
from utils.settings import RetrievalSettings

Mode = Literal["dense", "lexical", "hybrid"]

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "use",
        "using",
    ]
)
# Identifiers such as ray.serve.batch, max_ongoing_requests or num-gpus stay whole; their parts
# are indexed too, so "batch" still matches "serve.batch".
_TOKEN_RE = re.compile(r"[a-z0-9]+(?:[._\-/][a-z0-9]+)*")
_PART_RE = re.compile(r"[._\-/]")
_WORD_RE = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    """Lower-cased BM25 terms: whole identifiers plus their parts, minus stop words."""
    tokens: list[str] = []
    for token in _TOKEN_RE.findall(text.lower()):
        parts = _PART_RE.split(token)
        if len(parts) > 1:
            tokens.append(token)
        tokens.extend(p for p in parts if p and p not in STOPWORDS)
    return tokens


class BM25Index:
    """Okapi BM25 as a sparse doc-term weight matrix: one sparse dot product per query."""

    def __init__(self, texts: list[str], k1: float = 1.2, b: float = 0.75) -> None:
        vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        tfs: list[float] = []
        lengths = np.zeros(len(texts), dtype=np.float32)
        for row, text in enumerate(texts):
            counts = Counter(tokenize(text))
            lengths[row] = sum(counts.values())
            for term, count in counts.items():
                rows.append(row)
                cols.append(vocab.setdefault(term, len(vocab)))
                tfs.append(count)
        self.vocab = vocab
        n_docs = max(len(texts), 1)
        tf = np.asarray(tfs, dtype=np.float32)
        row_idx = np.asarray(rows, dtype=np.int64)
        col_idx = np.asarray(cols, dtype=np.int64)
        df = np.bincount(col_idx, minlength=len(vocab)).astype(np.float32)
        idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
        avg_len = float(lengths.mean()) if len(texts) else 1.0
        norm = k1 * (1 - b + b * lengths[row_idx] / max(avg_len, 1e-9))
        weights = idf[col_idx] * tf * (k1 + 1) / (tf + norm)
        self.matrix = sparse.csc_matrix(
            (weights, (row_idx, col_idx)), shape=(len(texts), len(vocab)), dtype=np.float32
        )

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for `query` (zeros when no term is known)."""
        cols = [self.vocab[t] for t in set(tokenize(query)) if t in self.vocab]
        if not cols:
            return np.zeros(self.matrix.shape[0], dtype=np.float32)
        return np.asarray(self.matrix[:, cols].sum(axis=1)).ravel()

    def search(self, query: str, n: int) -> list[tuple[int, float]]:
        """Top `n` (row, score) pairs with a positive score, best first."""
        scores = self.scores(query)
        n = min(n, len(scores))
        if n == 0:
            return []
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]


@dataclass(frozen=True)
class RetrievedChunk:
    """A search hit: the chunk, its fused score and the rank of each leg that found it."""

    chunk: Chunk
    score: float
    dense_rank: int | None = None
    lexical_rank: int | None = None


def normalize_query(query: str) -> str:
    """Collapse whitespace and strip; the query text used by both legs."""
    return " ".join(query.split())


class HybridRetriever:
    """Dense + BM25 retrieval with reciprocal rank fusion over one published index."""

    def __init__(self, published: PublishedIndex, settings: RetrievalSettings) -> None:
        # One query at a time: FAISS's OpenMP fan-out costs more than it saves (measured on the
        # 19k-chunk Ray docs index: 15 ms per flat search with 2 threads, 2 ms with 1).
        faiss.omp_set_num_threads(1)
        self.published = published
        self.settings = settings
        titles = bool(published.manifest.get("prepend_titles", True))
        self.bm25 = BM25Index(
            [c.embed_text(titles) for c in published.chunks], settings.bm25_k1, settings.bm25_b
        )
        # Normalised once here, not per candidate per query: what `dedupe` compares.
        self._dedupe_keys = [" ".join(_WORD_RE.findall(c.text.lower())) for c in published.chunks]

    @property
    def version(self) -> str:
        return self.published.version

    def _dense(self, vector: np.ndarray, n: int) -> list[tuple[int, float]]:
        query = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
        scores, rows = self.published.index.search(query, min(n, self.published.index.ntotal))
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]

    def search(
        self, query: str, vector: np.ndarray | None, k: int | None = None, mode: Mode | None = None
    ) -> list[RetrievedChunk]:
        """Top `k` chunks for a query; `vector` is the query embedding (needed unless lexical)."""
        s = self.settings
        k = k or s.top_k
        mode = mode or s.mode
        depth = max(s.candidates, k)
        candidates: dict[int, _Candidate] = {}
        if mode != "lexical" and vector is not None:
            for rank, (row, cosine) in enumerate(self._dense(vector, depth), start=1):
                candidates[row] = _Candidate(
                    dense_rank=rank, cosine=cosine, fused=s.dense_weight / (s.rrf_k + rank)
                )
        if mode != "dense":
            for rank, (row, _) in enumerate(self.bm25.search(normalize_query(query), depth), 1):
                candidate = candidates.setdefault(row, _Candidate())
                candidate.lexical_rank = rank
                candidate.fused += s.lexical_weight / (s.rrf_k + rank)
        if mode != "dense" and s.page_bonus:
            # A page that several candidates come from is likelier the answer than a page with
            # one: each chunk gains a share of its page's other candidates' scores.
            page_sum: defaultdict[str, float] = defaultdict(float)
            for row, cand in candidates.items():
                page_sum[self.published.chunks[row].page_url] += cand.fused
            for row, cand in candidates.items():
                others = page_sum[self.published.chunks[row].page_url] - cand.fused
                cand.fused += s.page_bonus * others
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
            results.append(RetrievedChunk(chunk, key(cand), cand.dense_rank, cand.lexical_rank))
            if len(results) >= k:
                break
        return results


@dataclass
class _Candidate:
    dense_rank: int | None = None
    lexical_rank: int | None = None
    cosine: float = 0.0
    fused: float = 0.0
