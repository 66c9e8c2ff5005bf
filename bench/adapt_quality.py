"""Corpus adaptation (issue 14): does a reranker or an embedder trained on the corpus help?

    python bench/adapt_quality.py [--parts ray-docs scifact] [--learners reranker embedder]
        [--max-queries 8000] [--epochs 1] [--candidates 20] [--work-dir /tmp/rag-adapt]

For each corpus: training queries come from the corpus alone (ragcore/adapt/pairs.py), hard
negatives from the base hybrid retriever, and each learner is trained on the CPU by the same
code the build job runs. The dev questions (Ray docs qa-dev, SciFact's training claims) are only
scored, never trained on. Rows: base hybrid, reranked, adapted embedder (its own re-embedded
index), both. Also the added query latency of reranking at concurrency 1. Results go to
bench/results/adapt_quality.json and the "Corpus adaptation" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

try:
    from bench import common
except ModuleNotFoundError:  # `python bench/x.py` puts only bench/ on sys.path
    import common  # type: ignore[no-redef]

import numpy as np

from evaluation.retrieval import Searcher, load_beir, load_qa, score_beir, score_qa
from ragcore.adapt.pairs import corpus_examples, hybrid_ranker
from ragcore.adapt.train import TrainedModel, train_reranker
from ragcore.embedding import SentenceEmbedder
from ragcore.index_format import PublishedIndex, load_index
from ragcore.rerank import CrossEncoderReranker
from utils.models import resolve_embedding_model
from utils.settings import AdaptSettings, RetrievalSettings


def _progress(name: str) -> Any:
    def report(step: int, total: int, seconds: float) -> None:
        if step % 25 == 0 or step == total:
            eta = seconds / max(step, 1) * (total - step)
            print(f"  {name}: step {step}/{total}, {seconds:.0f}s, eta {eta:.0f}s", flush=True)

    return report


def train(
    searcher: Searcher, embedder: SentenceEmbedder, out: Path, settings: AdaptSettings
) -> TrainedModel:
    """Examples from the index's own chunks (negatives from `searcher`'s hybrid retriever),
    then the reranker."""
    published = searcher.retriever.published
    start = time.perf_counter()
    rank = hybrid_ranker(searcher.retriever, embedder.embed, depth=30)
    examples = corpus_examples(published.chunks, rank, settings)
    print(f"  {len(examples)} examples in {time.perf_counter() - start:.0f}s", flush=True)
    base = resolve_embedding_model(published.embedding_model)
    return train_reranker(examples, base, out / "reranker", out / "work-reranker", settings,
                          progress=_progress("reranker"))  # fmt: skip


def base_searcher(published: PublishedIndex, candidates: int) -> tuple[Searcher, SentenceEmbedder]:
    """One searcher (one BM25 index, one embedder) for mining, scoring and reranking: the
    reranked rows set its `reranker`."""
    embedder = SentenceEmbedder(published.embedding_model)
    return Searcher(published, RetrievalSettings(), embedder, None, candidates), embedder


def rerank_latency(searcher: Searcher, questions: list[str], k: int = 5) -> dict[str, float]:
    """Per-question wall time at concurrency 1, with and without the reranker (p50, p99)."""
    reranker, searcher.reranker = searcher.reranker, None
    plain = [_timed(searcher, q, k) for q in questions]
    searcher.reranker = reranker
    reranked = [_timed(searcher, q, k) for q in questions]
    return {"base_p50_ms": common.pct(plain, 50), "base_p99_ms": common.pct(plain, 99),
            "rerank_p50_ms": common.pct(reranked, 50),
            "rerank_p99_ms": common.pct(reranked, 99)}  # fmt: skip


def _timed(searcher: Searcher, question: str, k: int) -> float:
    searcher._vectors.clear()  # embed each time, as a served query would
    start = time.perf_counter()
    searcher.search([question], k, "hybrid")
    return time.perf_counter() - start  # seconds, as common.pct takes them


def ray_docs(work: Path, settings: AdaptSettings, candidates: int) -> dict[str, Any]:
    index_dir, _ = common.resolve_index(common.RAY_DOCS_INDEX)
    searcher, embedder = base_searcher(load_index(index_dir), candidates)
    trained = train(searcher, embedder, work / "ray-docs", settings)
    items = load_qa(common.QA_FILE)
    rows = {"base hybrid": score_qa(searcher, items, [1, 5, 10], "hybrid")[0]}
    searcher.reranker = CrossEncoderReranker(str(trained.path), max_length=settings.max_length)
    rows["reranked"] = score_qa(searcher, items, [1, 5, 10], "hybrid")[0]
    latency = rerank_latency(searcher, [i.question for i in items[:100]])
    return {"rows": rows, "training": _training(trained), "latency": latency}


def scifact(work: Path, settings: AdaptSettings, candidates: int) -> dict[str, Any]:
    from bench.ablation_indexes import ensure_scifact_index
    from utils.settings import ChunkingSettings

    data = load_beir(common.SCIFACT, "train")
    index_dir = ensure_scifact_index(work / "indexes", data, ChunkingSettings())
    searcher, embedder = base_searcher(load_index(index_dir), candidates)
    trained = train(searcher, embedder, work / "scifact", settings)
    rows = {"base hybrid": score_beir(searcher, data, "hybrid")}
    searcher.reranker = CrossEncoderReranker(str(trained.path), max_length=settings.max_length)
    rows["reranked"] = score_beir(searcher, data, "hybrid")
    return {"rows": rows, "training": _training(trained)}


def _training(trained: TrainedModel) -> dict[str, Any]:
    return {"learner": trained.learner, "examples": trained.examples, "steps": trained.steps,
            "seconds": round(trained.seconds, 1)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["ray-docs", "scifact"])
    parser.add_argument("--max-queries", type=int, default=AdaptSettings().max_queries)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=AdaptSettings().batch_size)
    parser.add_argument("--max-length", type=int, default=AdaptSettings().max_length)
    parser.add_argument("--layers", type=int, default=AdaptSettings().reranker_layers)
    parser.add_argument("--negatives", type=int, default=AdaptSettings().negatives)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/rag-adapt"))
    args = parser.parse_args()
    settings = AdaptSettings(enabled=True, max_queries=args.max_queries, epochs=args.epochs,
                             batch_size=args.batch_size, max_length=args.max_length,
                             reranker_layers=args.layers, negatives=args.negatives)  # fmt: skip
    np.random.seed(settings.seed)
    results: dict[str, Any] = {"settings": settings.model_dump(), "candidates": args.candidates}
    if "ray-docs" in args.parts:
        results["ray_docs"] = ray_docs(args.work_dir, settings, args.candidates)
        print(results["ray_docs"], flush=True)
    if "scifact" in args.parts:
        results["scifact"] = scifact(args.work_dir, settings, args.candidates)
        print(results["scifact"], flush=True)
    common.write_results("adapt_quality", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
