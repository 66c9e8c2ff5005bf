"""BM25 as an inverted index, and batched search equal to one-at-a-time search."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ragcore.bm25 import BM25Index, tokenize
from ragcore.index_format import load_index
from ragcore.retrieval import HybridRetriever, RetrievedChunk
from tests.helpers import PAGES, hash_vector, publish_tiny_index
from utils.settings import RetrievalSettings

TEXTS = [
    "Serve autoscaling_config scales replicas with target_ongoing_requests.",
    "Use serve.batch to batch requests; batch size and batch wait are settings.",
    "A DeploymentHandle calls another deployment.",
    "Nothing relevant here at all.",
]


def reference_bm25(texts: list[str], query: str, k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """Okapi BM25 written out term by term, the textbook way."""
    docs = [Counter(tokenize(t)) for t in texts]
    avg = sum(sum(d.values()) for d in docs) / len(docs)
    scores = np.zeros(len(docs))
    for term in set(tokenize(query)):
        df = sum(1 for d in docs if term in d)
        idf = np.log1p((len(docs) - df + 0.5) / (df + 0.5))
        for i, d in enumerate(docs):
            tf = d.get(term, 0)
            length = sum(d.values())
            scores[i] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avg)) if tf else 0
    return scores


def test_inverted_index_scores_equal_textbook_bm25() -> None:
    index = BM25Index(TEXTS)
    for query in ("batch requests", "serve.batch size", "replicas autoscaling", "unknownword"):
        np.testing.assert_allclose(index.scores(query), reference_bm25(TEXTS, query), rtol=1e-5)
    assert index.search("batch", 2)[0][0] == 1
    assert index.search("unknownword", 3) == []


def test_search_many_equals_search_one_by_one(tmp_path: Path) -> None:
    publish_tiny_index(tmp_path)
    retriever = HybridRetriever(load_index(tmp_path), RetrievalSettings(max_per_page=0))
    queries = [f"{name} {text.split()[0]}" for name, text in PAGES.items()] + ["handles"]
    vectors = np.stack([hash_vector(q) for q in queries])
    batched = retriever.search_many(queries, vectors, [2] * len(queries))
    single = [retriever.search(q, v, 2) for q, v in zip(queries, vectors, strict=True)]

    def ranked(results: list[list[RetrievedChunk]]) -> list[list[tuple[object, ...]]]:
        return [[(r.chunk.id, r.score, r.dense_rank, r.lexical_rank) for r in hits]
                for hits in results]  # fmt: skip

    assert ranked(batched) == ranked(single)
    # Every hit carries its true cosine, whichever leg found it (the refusal signal).
    for hits, vector in zip(batched, vectors, strict=True):
        for r in hits:
            assert r.cosine == pytest.approx(float(hash_vector(r.chunk.embed_text(True)) @ vector),
                                             abs=1e-5)  # fmt: skip
