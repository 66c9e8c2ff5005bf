"""Corpus adaptation (issue 14): does a reranker or an embedder trained on the corpus help?

    python bench/adapt_quality.py [--parts ray-docs scifact] [--learners reranker embedder]
        [--max-queries 8000] [--epochs 1] [--candidates 20] [--fused-weight 1]
        [--work-dir /tmp/rag-adapt]

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
from dataclasses import replace
from pathlib import Path
from typing import Any

try:
    from bench import common
except ModuleNotFoundError:  # `python bench/x.py` puts only bench/ on sys.path
    import common  # type: ignore[no-redef]

import numpy as np

try:
    from bench.report import table
except ModuleNotFoundError:
    from report import table  # type: ignore[no-redef]

from evaluation.retrieval import Searcher, load_beir, load_qa, score_beir, score_qa
from ragcore.adapt.pairs import corpus_examples, hybrid_ranker
from ragcore.adapt.train import TrainedModel, train_embedder, train_reranker
from ragcore.embedding import SentenceEmbedder
from ragcore.index_format import PublishedIndex, build_faiss_index, load_index
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
) -> dict[str, TrainedModel]:
    """Examples from the index's own chunks (negatives from `searcher`'s hybrid retriever),
    then each learner of `settings.learners`."""
    published = searcher.retriever.published
    start = time.perf_counter()
    rank = hybrid_ranker(searcher.retriever, embedder.embed, depth=30)
    examples = corpus_examples(published.chunks, rank, settings)
    print(f"  {len(examples)} examples in {time.perf_counter() - start:.0f}s", flush=True)
    base = resolve_embedding_model(published.embedding_model)
    learners = {"reranker": train_reranker, "embedder": train_embedder}
    return {name: learners[name](examples, base, out / name, out / f"work-{name}", settings,
                                 progress=_progress(name))
            for name in settings.learners}  # fmt: skip


def adapted_searcher(
    published: PublishedIndex, model: Path, retrieval: RetrievalSettings
) -> tuple[Searcher, float]:
    """A searcher over the corpus re-embedded with the adapted embedder; the re-embedding
    seconds."""
    start = time.perf_counter()
    embedder = SentenceEmbedder(str(model))
    titles = bool(published.manifest.get("prepend_titles", True))
    vectors = embedder.embed([c.embed_text(titles) for c in published.chunks])
    index = build_faiss_index(vectors, "flat", 32)
    manifest = {**published.manifest, "embedding_model": str(model)}
    adapted = replace(published, manifest=manifest, index=index)
    seconds = time.perf_counter() - start
    return Searcher(adapted, retrieval, embedder), seconds


def score_rows(
    searcher: Searcher,
    trained: dict[str, TrainedModel],
    settings: AdaptSettings,
    retrieval: RetrievalSettings,
    score: Any,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Each row's figures (`score(searcher)`): base, reranked (blended with the fused order,
    and alone), adapted embedder, both; and the re-embedding time."""
    rows = {"base hybrid": score(searcher)}
    reranker = None
    if "reranker" in trained:
        reranker = CrossEncoderReranker(str(trained["reranker"].path),
                                        max_length=settings.max_length)  # fmt: skip
        searcher.reranker = reranker
        rows[f"reranked (fused weight {retrieval.rerank_fused_weight:g})"] = score(searcher)
        if retrieval.rerank_fused_weight:
            searcher.settings = retrieval.model_copy(update={"rerank_fused_weight": 0.0})
            rows["reranked alone"] = score(searcher)
            searcher.settings = retrieval
        searcher.reranker = None
    extra: dict[str, float] = {}
    if "embedder" in trained:
        published = searcher.retriever.published
        adapted, extra["reembed_seconds"] = adapted_searcher(
            published, trained["embedder"].path, retrieval
        )
        rows["adapted embedder"] = score(adapted)
        if reranker is not None:
            adapted.reranker = reranker
            rows["both"] = score(adapted)
    return rows, extra


def base_searcher(
    published: PublishedIndex, retrieval: RetrievalSettings
) -> tuple[Searcher, SentenceEmbedder]:
    """One searcher (one BM25 index, one embedder) for mining, scoring and reranking: the
    reranked rows set its `reranker`."""
    embedder = SentenceEmbedder(published.embedding_model)
    return Searcher(published, retrieval, embedder), embedder


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


def ray_docs(work: Path, settings: AdaptSettings, retrieval: RetrievalSettings) -> dict[str, Any]:
    index_dir, _ = common.resolve_index(common.RAY_DOCS_INDEX)
    searcher, embedder = base_searcher(load_index(index_dir), retrieval)
    trained = train(searcher, embedder, work / "ray-docs", settings)
    items = load_qa(common.QA_FILE)
    rows, extra = score_rows(searcher, trained, settings, retrieval,
                             lambda s: score_qa(s, items, [1, 5, 10], "hybrid")[0])  # fmt: skip
    result = {"rows": rows, "training": _training(trained), **extra}
    if "reranker" in trained:
        searcher.reranker = CrossEncoderReranker(str(trained["reranker"].path),
                                                 max_length=settings.max_length)  # fmt: skip
        result["latency"] = rerank_latency(searcher, [i.question for i in items[:100]])
    return result


def scifact(work: Path, settings: AdaptSettings, retrieval: RetrievalSettings) -> dict[str, Any]:
    from bench.ablation_indexes import ensure_scifact_index
    from utils.settings import ChunkingSettings

    data = load_beir(common.SCIFACT, "train")
    index_dir = ensure_scifact_index(work / "indexes", data, ChunkingSettings())
    searcher, embedder = base_searcher(load_index(index_dir), retrieval)
    trained = train(searcher, embedder, work / "scifact", settings)
    rows, extra = score_rows(searcher, trained, settings, retrieval,
                             lambda s: score_beir(s, data, "hybrid"))  # fmt: skip
    return {"rows": rows, "training": _training(trained), **extra}


def _training(trained: dict[str, TrainedModel]) -> dict[str, Any]:
    return {name: {"examples": t.examples, "steps": t.steps, "seconds": round(t.seconds, 1)}
            for name, t in trained.items()}  # fmt: skip


ANCHORS = (
    "Published SciFact nDCG@10 anchors (BEIR test split): BM25 0.665, all-MiniLM-L6-v2 "
    "0.645; GPL-style domain adaptation of dense retrievers adds a few points."
)


def report(results: dict[str, Any]) -> dict[str, Any]:
    """The docs/benchmarks.md section: one table per corpus, a row per configuration."""
    body: list[Any] = []
    training = []
    if "ray_docs" in results:
        part = results["ray_docs"]
        body.append("Ray docs: the 213 dev questions, page-level (scored only, never trained on).")
        body.append(table(["configuration", "hit@1", "hit@5", "hit@10", "MRR"],
                          [[name, m["page_hit@1"], m["page_hit@5"], m["page_hit@10"], m["mrr"]]
                           for name, m in part["rows"].items()],
                          "lrrrr", [None, ".3f", ".3f", ".3f", ".3f"]))  # fmt: skip
        training.append(("Ray docs", part))
    if "scifact" in results:
        part = results["scifact"]
        body.append("SciFact: the training claims (qrels/train.tsv; scored only). " + ANCHORS)
        body.append(table(["configuration", "nDCG@10", "R@100"],
                          [[name, m["ndcg@10"], m["recall@100"]]
                           for name, m in part["rows"].items()],
                          "lrr", [None, ".3f", ".3f"]))  # fmt: skip
        training.append(("SciFact", part))
    rows = [[corpus, learner, t["examples"], t["steps"], t["seconds"] / 60,
             part.get("reembed_seconds", 0) / 60 if learner == "embedder" else None]
            for corpus, part in training for learner, t in part["training"].items()]  # fmt: skip
    body.append("Training on this machine's CPU (no GPU was lent):")
    body.append(table(["corpus", "learner", "examples", "steps", "train min", "re-embed min"],
                      rows, "llrrrr", [None, None, None, None, ".1f", ".1f"]))  # fmt: skip
    latency = results.get("ray_docs", {}).get("latency")
    if latency:
        body.append("Query latency at concurrency 1 (Ray docs, 100 questions, one process):")
        body.append(table(["path", "p50 ms", "p99 ms"],
                          [["hybrid", latency["base_p50_ms"], latency["base_p99_ms"]],
                           [f"hybrid + rerank top {results['candidates']}",
                            latency["rerank_p50_ms"], latency["rerank_p99_ms"]]],
                          "lrr", [None, ".1f", ".1f"]))  # fmt: skip
    settings = results["settings"]
    intro = (
        f"`bench/adapt_quality.py`: models trained on each corpus alone ({settings['max_queries']} "
        f"queries at most, {settings['epochs']:g} epoch, learning rate "
        f"{settings['learning_rate']:g}, {settings['max_length']} tokens, "
        "hard negatives from the hybrid retriever), then scored on the dev questions."
    )
    spaced = [line for block in body for line in (block, "")][:-1]  # blank lines between blocks
    return {"title": "Corpus adaptation (build_index.py --adapt)", "intro": intro,
            "body": spaced}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["ray-docs", "scifact"])
    parser.add_argument("--learners", nargs="+", default=list(AdaptSettings().learners),
                        choices=["reranker", "embedder"])  # fmt: skip
    parser.add_argument("--max-queries", type=int, default=AdaptSettings().max_queries)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=AdaptSettings().batch_size)
    parser.add_argument("--max-length", type=int, default=AdaptSettings().max_length)
    parser.add_argument("--learning-rate", type=float, default=AdaptSettings().learning_rate)
    parser.add_argument("--layers", type=int, default=AdaptSettings().reranker_layers)
    parser.add_argument("--negatives", type=int, default=AdaptSettings().negatives)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--fused-weight", type=float,
                        default=RetrievalSettings().rerank_fused_weight)  # fmt: skip
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/rag-adapt"))
    args = parser.parse_args()
    settings = AdaptSettings(enabled=True, learners=args.learners, max_queries=args.max_queries,
                             epochs=args.epochs, batch_size=args.batch_size,
                             max_length=args.max_length, reranker_layers=args.layers,
                             negatives=args.negatives,
                             learning_rate=args.learning_rate)  # fmt: skip
    np.random.seed(settings.seed)
    retrieval = RetrievalSettings(rerank_candidates=args.candidates,
                                  rerank_fused_weight=args.fused_weight)  # fmt: skip
    results: dict[str, Any] = {"settings": settings.model_dump(), "candidates": args.candidates,
                               "fused_weight": args.fused_weight}  # fmt: skip
    if "ray-docs" in args.parts:
        results["ray_docs"] = ray_docs(args.work_dir, settings, retrieval)
        print(results["ray_docs"], flush=True)
    if "scifact" in args.parts:
        results["scifact"] = scifact(args.work_dir, settings, retrieval)
        print(results["scifact"], flush=True)
    common.write_results("adapt_quality", {**results, **report(results)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
