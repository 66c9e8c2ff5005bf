"""Cross-encoder reranking of the fused candidates: the service and the evaluation share it.

The reranker reads each (query, chunk) pair whole, so it sees what the bi-encoder and BM25
miss (which words of the query the chunk answers). It only reorders the top `candidates` of
hybrid retrieval; all pairs of a batch of queries go through one forward pass."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

import numpy as np

from ragcore.retrieval import RetrievedChunk


class PairScorer(Protocol):
    """Scores (query, passage) pairs; higher is more relevant."""

    def score(self, pairs: list[tuple[str, str]], batch_size: int | None = None) -> np.ndarray:
        """One score per pair; `batch_size` pairs per forward pass (None: the scorer's own)."""
        ...


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder directory (a trained one sits in its index
    version), run on this process's CPU or GPU."""

    def __init__(
        self,
        path: str,
        batch_size: int = 64,
        max_length: int | None = None,
        device: str = "cpu",
    ) -> None:
        from sentence_transformers.cross_encoder import CrossEncoder

        self.path = path
        self.batch_size = batch_size
        self.model = CrossEncoder(path, max_length=max_length, device=device)

    def score(self, pairs: list[tuple[str, str]], batch_size: int | None = None) -> np.ndarray:
        """Raw logits, one per pair (monotone in relevance)."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        size = batch_size or self.batch_size
        scores = self.model.predict(pairs, batch_size=size, convert_to_numpy=True,
                                    show_progress_bar=False, activation_fn=None)  # fmt: skip
        return np.asarray(scores, dtype=np.float32).ravel()


RANK_K = 10  # 1/(RANK_K + rank) in the blend (the default of the retriever's own rrf_k)


def blend_order(scores: np.ndarray, fused_weight: float) -> np.ndarray:
    """Positions of the candidates (given in fused order), best first: by reciprocal-rank
    fusion of the reranker's order with weight 1 and the fused order with `fused_weight` (0:
    the reranker's order alone). A reranker trained on a small CPU budget is weaker than the
    fused order at its top; the blend keeps what both agree on."""
    rerank_rank = np.empty(len(scores), dtype=np.int64)
    rerank_rank[np.argsort(-scores, kind="stable")] = np.arange(len(scores))
    fused_rank = np.arange(len(scores))
    blended = 1.0 / (RANK_K + 1 + rerank_rank) + fused_weight / (RANK_K + 1 + fused_rank)
    return np.argsort(-blended, kind="stable")


def rerank_many(
    scorer: PairScorer,
    queries: list[str],
    results: list[list[RetrievedChunk]],
    ks: list[int],
    candidates: int | list[int],
    titles: bool = True,
    batch_size: int | None = None,
    fused_weight: float | list[float] = 0.0,
) -> list[list[RetrievedChunk]]:
    """Reorder the first `candidates` (per query, or one count for all) of each result list
    by the scorer, blended with the fused order by `fused_weight` (per query, or one for all;
    `blend_order`), and keep `ks[i]`. A hit's `score` becomes the reranker's; its legs' ranks
    and cosine stay."""
    count = len(queries)
    heads = candidates if isinstance(candidates, list) else [candidates] * count
    weights = fused_weight if isinstance(fused_weight, list) else [fused_weight] * count
    pairs: list[tuple[str, str]] = []
    spans: list[tuple[int, int]] = []
    for query, hits, n in zip(queries, results, heads, strict=True):
        head = hits[:n]
        spans.append((len(pairs), len(pairs) + len(head)))
        pairs += [(query, hit.chunk.embed_text(titles)) for hit in head]
    scores = scorer.score(pairs, batch_size)
    out = []
    for (start, end), hits, k, weight in zip(spans, results, ks, weights, strict=True):
        own = scores[start:end]
        ranked = [replace(hits[i], score=float(own[i])) for i in blend_order(own, weight)]
        out.append((ranked + hits[end - start :])[:k])
    return out
