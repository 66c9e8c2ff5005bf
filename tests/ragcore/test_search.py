"""The search engine with an index version's own models (build_index.py --adapt): its query
embedder, and its reranker with per-variant settings, one pass per batch and a timeout that
falls back to the fused order. Fakes stand in for the models (the adapt build test loads real
ones)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from ragcore.index_format import PublishedIndex
from ragcore.index_manager import IndexManager
from ragcore.search import SearchEngine
from ragcore.version_models import VersionModels
from tests.helpers import HashEmbedder, RecordingMetrics, hash_vector, publish_tiny_index
from utils.settings import RetrievalSettings, ServiceSettings


class PreferScorer:
    """Scores a pair by whether its passage holds `word`; counts its calls; may be slow."""

    def __init__(self, word: str, delay_s: float = 0.0) -> None:
        self.word = word
        self.delay_s = delay_s
        self.calls: list[int] = []
        self.batch_sizes: list[int | None] = []

    def score(self, pairs: list[tuple[str, str]], batch_size: int | None = None) -> np.ndarray:
        self.calls.append(len(pairs))
        self.batch_sizes.append(batch_size)
        time.sleep(self.delay_s)
        return np.array([float(self.word in p.lower()) for _, p in pairs], dtype=np.float32)


class CountingEmbedder(HashEmbedder):
    """The version's own query embedder: hashed vectors, counted."""

    def __init__(self) -> None:
        super().__init__("models/embedder")
        self.texts: list[str] = []

    async def embed_many(self, texts: list[str]) -> np.ndarray:
        self.texts += texts
        return await super().embed_many(texts)


class FixedModels:
    """A `VersionModelLoader` that hands every version the same models."""

    def __init__(self, models: VersionModels) -> None:
        self.models = models

    def load(self, published: PublishedIndex) -> VersionModels:
        return self.models


def engine(
    tmp_path: Path, models: VersionModels, **retrieval: object
) -> tuple[SearchEngine, RecordingMetrics]:
    publish_tiny_index(tmp_path)
    settings = ServiceSettings(index_dir=tmp_path, retrieval={"max_per_page": 0, **retrieval})
    manager = IndexManager(settings, FixedModels(models))  # type: ignore[arg-type]
    assert manager.refresh()
    metrics = RecordingMetrics()
    return SearchEngine(HashEmbedder(), manager, 32, 30.0, metrics), metrics


QUERY = "how do replicas scale with requests"


def test_the_versions_reranker_reorders_the_fused_candidates(tmp_path: Path) -> None:
    fused, _ = engine(tmp_path, VersionModels())
    plain = asyncio.run(fused.search(QUERY, 3))
    assert "DeploymentHandle" not in plain.hits[0].content  # fused order puts it lower
    scorer = PreferScorer("deploymenthandle")
    models = VersionModels(reranker=scorer)
    reranked, metrics = engine(tmp_path / "r", models, rerank_fused_weight=0.0)
    outcome = asyncio.run(reranked.search(QUERY, 3))
    assert "DeploymentHandle" in outcome.hits[0].content
    assert sorted(h.content for h in outcome.hits) == sorted(h.content for h in plain.hits)
    assert metrics.reranks == ["reranked"] and scorer.calls == [3]
    # A variant that weighs the fused order over the reranker's keeps the fused top hit.
    fused_first = RetrievalSettings(max_per_page=0, rerank_fused_weight=2.0)
    blended = asyncio.run(reranked.search(QUERY, 3, retrieval=fused_first))
    assert blended.hits[0].content == plain.hits[0].content


def test_concurrent_searches_are_reranked_in_one_pass(tmp_path: Path) -> None:
    scorer = PreferScorer("batch")
    searcher, metrics = engine(tmp_path, VersionModels(reranker=scorer), rerank_candidates=2)

    async def both() -> list[object]:
        return list(await asyncio.gather(searcher.search(QUERY, 1), searcher.search("x y", 1)))

    asyncio.run(both())
    assert scorer.calls == [4] and metrics.reranks == ["reranked"]  # 2 candidates x 2 queries


def test_a_variants_rerank_batch_size_reaches_the_reranker(tmp_path: Path) -> None:
    scorer = PreferScorer("batch")
    searcher, _ = engine(tmp_path, VersionModels(reranker=scorer))
    small = RetrievalSettings(max_per_page=0, rerank_batch_size=3)

    async def both() -> list[object]:
        return list(await asyncio.gather(searcher.search(QUERY, 1),
                                         searcher.search("x y", 1, retrieval=small)))  # fmt: skip

    asyncio.run(both())
    assert scorer.batch_sizes == [3]  # one pass for the batch, at its tightest batch size


def test_a_slow_reranker_falls_back_to_the_fused_order(tmp_path: Path) -> None:
    fused, _ = engine(tmp_path, VersionModels())
    slow = PreferScorer("deploymenthandle", delay_s=1.0)
    searcher, metrics = engine(tmp_path / "slow", VersionModels(reranker=slow),
                               rerank_timeout_s=0.05)  # fmt: skip
    outcome = asyncio.run(searcher.search(QUERY, 3))
    assert [h.content for h in outcome.hits] == [
        h.content for h in asyncio.run(fused.search(QUERY, 3)).hits
    ]
    assert metrics.reranks == ["timeout"]


def test_a_variant_can_turn_reranking_off(tmp_path: Path) -> None:
    scorer = PreferScorer("deploymenthandle")
    searcher, metrics = engine(tmp_path, VersionModels(reranker=scorer))
    off = RetrievalSettings(max_per_page=0, rerank=False)
    outcome = asyncio.run(searcher.search(QUERY, 3, retrieval=off))
    assert "DeploymentHandle" not in outcome.hits[0].content
    assert scorer.calls == [] and metrics.reranks == []


@pytest.mark.parametrize("given", [False, True])
def test_the_versions_query_embedder_embeds_and_the_outcome_keeps_the_base_vector(
    tmp_path: Path, given: bool
) -> None:
    own = CountingEmbedder()
    searcher, _ = engine(tmp_path, VersionModels(query_embedder=own))
    base = hash_vector(QUERY) if given else None
    outcome = asyncio.run(searcher.search(QUERY, 2, vector=base))
    assert own.texts == [QUERY]  # a caller's base vector is not in the version's space
    assert (outcome.vector is base) if given else outcome.vector is None  # the cache's space
    assert outcome.hits
