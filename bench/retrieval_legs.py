"""Cost per query of each retrieval leg on one index, against the BM25 it replaced.

    python bench/retrieval_legs.py [--index-dir DIR] [--queries 213] [--repeats 3]

Times, single-threaded on the Ray-docs dev questions over the full index: BM25 as the old
scipy column-slice sum (the baseline), BM25 over the inverted index (`ragcore.bm25`), the dense
leg as FAISS's flat search (per query and in batches of 32) and as the retriever now runs it
(one BLAS product per batch), and `HybridRetriever.search_many` end to end (fusion included).
Query vectors are embedded once, before timing; BLAS and OpenMP run on one thread, as in a
replica with num_cpus 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

try:
    from bench import common
except ModuleNotFoundError:  # `python bench/x.py` puts only bench/ on sys.path
    import common  # type: ignore[no-redef]

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from bench.report import table
from ragcore.bm25 import BM25Index, tokenize
from ragcore.embedding import SentenceEmbedder
from ragcore.index_format import load_index
from ragcore.retrieval import HybridRetriever
from utils.settings import RetrievalSettings


def scipy_bm25(index: BM25Index) -> Callable[[str], np.ndarray]:
    """The previous implementation: a CSC doc-term matrix, column slice and row sum."""
    docs = np.repeat(np.arange(len(index.offsets) - 1), np.diff(index.offsets))
    matrix = sparse.csc_matrix((index.weights, (index.postings, docs)),
                               shape=(index.num_docs, len(index.vocab)))  # fmt: skip

    def scores(query: str) -> np.ndarray:
        cols = [index.vocab[t] for t in set(tokenize(query)) if t in index.vocab]
        return np.asarray(matrix[:, cols].sum(axis=1)).ravel()

    return scores


def per_query_ms(run: Callable[[], object], count: int, repeats: int) -> float:
    """Best of `repeats` wall times of `run`, in ms per query."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best * 1000 / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=None)
    parser.add_argument("--queries", type=int, default=213)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    index_dir, version = common.resolve_index(args.index_dir)
    published = load_index(index_dir, version)
    retriever = HybridRetriever(published, RetrievalSettings())
    queries = common.load_questions()[: args.queries]
    vectors = SentenceEmbedder(published.embedding_model, num_threads=1).embed(queries)
    n, depth, bm25 = len(queries), RetrievalSettings().candidates, retriever.bm25
    old = scipy_bm25(bm25)
    dense = published.index

    def batched_dense() -> None:
        for i in range(0, n, 32):
            dense.search(vectors[i : i + 32], depth)

    def hybrid() -> None:
        for i in range(0, n, 32):
            batch = queries[i : i + 32]
            retriever.search_many(batch, vectors[i : i + 32], [5] * len(batch))

    legs: dict[str, Callable[[], object]] = {
        "BM25, scipy column slice (before)": lambda: [old(q) for q in queries],
        "BM25, inverted index (now)": lambda: [bm25.scores(q) for q in queries],
        "dense, FAISS flat search per query (before)": lambda: [
            dense.search(v[None], depth) for v in vectors
        ],
        "dense, FAISS flat search, batches of 32": batched_dense,
        "dense, one matrix product per batch of 32 (now)": lambda: [
            retriever._dense(vectors[i : i + 32], depth) for i in range(0, n, 32)
        ],
        "hybrid search_many, batches of 32 (fusion included)": hybrid,
    }
    with threadpool_limits(1):  # Ray gives a 1-CPU replica OMP_NUM_THREADS=1
        timings = {name: per_query_ms(run, n, args.repeats) for name, run in legs.items()}
    for name, ms in timings.items():
        print(f"{name:55s} {ms:7.3f} ms/query", flush=True)
    rows = [[name, ms] for name, ms in timings.items()]
    intro = (f"`python bench/retrieval_legs.py`: each retrieval leg per query, one thread, {n} "
             f"Ray-docs dev questions over index {version} ({len(published.chunks)} chunks), "
             f"{depth} candidates per leg, best of {args.repeats}.")  # fmt: skip
    common.write_results("retrieval_legs", {
        "title": "Retrieval legs per query", "intro": intro, "index_version": version,
        "chunks": len(published.chunks), "timings_ms": timings,
        "body": [table(["leg", "ms per query"], rows, "lr", [None, ".3f"])],
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
