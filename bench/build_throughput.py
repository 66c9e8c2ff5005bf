"""Build-job throughput over the docs.ray.io mirror, against the hardware bound, in one run.

    python bench/build_throughput.py [--index-dir /tmp/bench-index] [--max-pages 5000]

Measures the real build job (crawl over loopback HTTP, clean, chunk, embed through the Ray actor
pool, publish), then encodes the very same chunk texts:
  * in a single-process sentence-transformers loop (the hardware bound for the model here), and
  * the book's way, one model load per Ray task, on a sample of batches.
Figures go to stdout, bench/results/build_throughput.json and the "Build throughput" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    from bench import common
except ModuleNotFoundError:  # `python bench/x.py` puts only bench/ on sys.path
    import common  # type: ignore[no-redef]

import ray

from bench.report import table
from pipelines.build import BuildSummary, run_build
from ragcore.index_format import load_index
from utils.models import load_sentence_transformer
from utils.ray_runtime import init_ray
from utils.settings import BuildSettings, CrawlSettings
from utils.static_site import StaticSite, ray_docs_seeds, unpack_ray_docs

TITLE = "Build throughput"


@ray.remote(num_cpus=1)
def embed_with_fresh_model(model_name: str, texts: list[str]) -> int:
    """The book's pattern: every task loads the model, embeds, and throws it away."""
    import torch

    torch.set_num_threads(1)
    model = load_sentence_transformer(model_name)
    model.encode(texts, batch_size=64, normalize_embeddings=True)
    return len(texts)


def parse_args() -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=None)
    parser.add_argument("--max-pages", type=int, default=5000)
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "rag-bench")
    parser.add_argument("--book-tasks", type=int, default=8, help="tasks in the per-task sample")
    parser.add_argument(
        "--bound-sample",
        type=int,
        default=3000,
        help="chunks (random, fixed seed) encoded by the single-process loop",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--ray-address",
        default=None,
        help="a running cluster of two nodes or more: compare embedding on one node and on "
        "all, over --bound-sample chunks of --index-dir's index",
    )
    parser.add_argument("--actors-per-node", type=int, default=1)
    return parser.parse_args()


def cold_build(args: argparse.Namespace) -> tuple[BuildSettings, BuildSummary, float]:
    """The real build job over a loopback copy of the mirror, without reused checkpoints;
    Ray stays up for the book's pattern."""
    site = unpack_ray_docs(common.RAY_DOCS_ARCHIVE, args.work_dir / "site")
    index_dir = args.index_dir or args.work_dir / "index"
    shutil.rmtree(index_dir, ignore_errors=True)
    init_ray(None, num_cpus=8)
    with StaticSite(site) as server:
        settings = BuildSettings(
            sources=ray_docs_seeds(server.url, args.work_dir / "site"),
            index_dir=index_dir,
            crawl=CrawlSettings(max_depth=4, max_pages=args.max_pages),
        )
        start = time.perf_counter()
        summary = run_build(settings)
        wall = time.perf_counter() - start
    return settings, summary, wall


def single_process_seconds(model_name: str, texts: list[str]) -> float:
    """Seconds one sentence-transformers process takes to encode `texts` (the hardware bound)."""
    model = load_sentence_transformer(model_name)
    start = time.perf_counter()
    model.encode(texts, batch_size=64, normalize_embeddings=True)
    return time.perf_counter() - start


def per_task_rate(model_name: str, texts: list[str], tasks: int) -> float:
    """Chunks/s of the book's pattern: `tasks` Ray tasks of 64 texts, one model load each."""
    batches = [texts[i : i + 64] for i in range(0, 64 * tasks, 64)]
    start = time.perf_counter()
    refs = [embed_with_fresh_model.remote(model_name, batch) for batch in batches]
    done = sum(ray.get(refs, timeout=1800))
    return done / (time.perf_counter() - start)


def figures(
    summary: BuildSummary, wall: float, sample: int, single_s: float, book: float
) -> dict[str, Any]:
    """The run's numbers, for the results JSON: the build's, the single-process bound's over a
    `sample` of its chunks, and the book pattern's rate."""
    st = summary.stage_seconds
    embed_rate = summary.embed.embedded_chunks / summary.embed.seconds
    single = sample / single_s
    return {
        "pages": summary.pages,
        "sections": summary.sections,
        "chunks": summary.chunks,
        "stage_seconds": st,
        "wall_s": wall,
        "pages_per_s": summary.pages / st["load"],
        "embed_chunks_per_s": embed_rate,
        "end_to_end_chunks_per_s": summary.chunks / wall,
        "single_process_sample": sample,
        "single_process_s": single_s,
        "single_process_chunks_per_s": single,
        "per_task_chunks_per_s": book,
        "embed_vs_single_process": embed_rate / single,
        "embed_vs_per_task": embed_rate / book,
    }


def table_rows(f: dict[str, Any]) -> list[list[str]]:
    """The measure | value rows of the section."""
    st = f["stage_seconds"]
    chunk_rate = f["chunks"] / st["chunk"] if st["chunk"] else float("nan")
    return [
        ["pages", f"{f['pages']}"],
        ["sections", f"{f['sections']}"],
        ["chunks", f"{f['chunks']}"],
        ["crawl + clean (Ray tasks)", f"{st['load']:.1f} s, {f['pages_per_s']:.1f} pages/s"],
        ["chunk", f"{st['chunk']:.1f} s, {chunk_rate:.0f} chunks/s"],
        ["embed (Ray actor pool, incl. model load)",
         f"{st['embed']:.1f} s, {f['embed_chunks_per_s']:.1f} chunks/s"],
        ["publish", f"{st['publish']:.1f} s"],
        ["end to end", f"{f['wall_s']:.1f} s, {f['end_to_end_chunks_per_s']:.1f} chunks/s"],
        ["single-process sentence-transformers loop (bound)",
         f"{f['single_process_s']:.1f} s, {f['single_process_chunks_per_s']:.1f} chunks/s"],
        ["embedding stage / single-process bound", f"{f['embed_vs_single_process']:.2f}"],
        ["one model load per Ray task (book), sample",
         f"{f['per_task_chunks_per_s']:.1f} chunks/s"],
        ["embedding stage / one load per task", f"{f['embed_vs_per_task']:.1f}x"],
    ]  # fmt: skip


def main() -> int:
    """Build, measure the two comparisons, write the results and the section."""
    args = parse_args()
    if args.ray_address:
        return cluster_run(args)
    if not common.RAY_DOCS_ARCHIVE.exists():
        print(f"skip: {common.RAY_DOCS_ARCHIVE} is absent")
        return 0
    settings, summary, wall = cold_build(args)
    model = settings.embedding.model_name
    titles = settings.chunking.prepend_titles
    texts = [c.embed_text(titles) for c in load_index(settings.index_dir).chunks]
    # The bound is a rate, so a fixed random sample of the same chunks measures it without
    # doubling the run time.
    sample = random.Random(0).sample(texts, min(args.bound_sample, len(texts)))
    single_s = single_process_seconds(model, sample)
    book = per_task_rate(model, sample, args.book_tasks)
    ray.shutdown()
    data = figures(summary, wall, len(sample), single_s, book)
    block = table(["measure", "value"], table_rows(data))
    print(*(f"| {k} | {v} |" for k, v in block["rows"]), sep="\n")
    intro = (
        f"`python bench/build_throughput.py` over the docs.ray.io mirror "
        f"({os.cpu_count()} cores, model {model}, chunk size "
        f"{settings.chunking.chunk_size}, batch {settings.embedding.batch_size})."
    )
    if not args.no_write:
        common.write_results("build_throughput", {"title": TITLE, "intro": intro,
                                                  "body": [block], "data": data})  # fmt: skip
    return 0


def cluster_run(args: argparse.Namespace) -> int:
    """Embedding on one node against every node of the cluster at --ray-address."""
    from bench.cluster_embed import compare

    index_dir = args.index_dir or args.work_dir / "index"
    settings = BuildSettings(index_dir=index_dir)
    titles = settings.chunking.prepend_titles
    texts = [c.embed_text(titles) for c in load_index(index_dir).chunks]
    sample = random.Random(0).sample(texts, min(args.bound_sample, len(texts)))
    init_ray(args.ray_address, num_cpus=0)
    data = compare(sample, settings.embedding, args.actors_per_node)
    ray.shutdown()
    runs = (("one node", data["one_node"]), ("every node", data["all_nodes"]))
    rows = [[name, run["nodes"], run["actors"], run["chunks"], f"{run['chunks_per_s']:.1f}",
             f"{run['per_actor_chunks_per_s']:.1f}", run["chunks_by_node"]]
            for name, run in runs]  # fmt: skip
    block = table(["run", "nodes", "actors", "chunks", "chunks/s", "per actor", "chunks by node"],
                  rows)  # fmt: skip
    print(*(f"| {' | '.join(map(str, r))} |" for r in block["rows"]), sep="\n")
    intro = (f"`python bench/build_throughput.py --ray-address ADDRESS --index-dir {index_dir}` "
             f"on a cluster of {data['all_nodes']['nodes']} Ray nodes started with `ray start` "
             f"on this one {os.cpu_count()}-core machine: {len(sample)} chunks of that index, "
             f"{args.actors_per_node} EmbeddingActor per node (one torch thread each), pinned "
             "by node affinity; model loading excluded.")  # fmt: skip
    note = (f"Every node against one: {data['speedup']:.2f}x, only because each node's actor "
            "runs one torch thread and this machine has 2 cores: both nodes share them, so the "
            "run proves distribution (the chunks by node), not scaling. docs/scaling.md "
            "extrapolates to real nodes from the per-actor rate.")  # fmt: skip
    if not args.no_write:
        common.write_results("build_cluster", {"title": "Build embedding on a two-node cluster",
                                               "intro": intro, "body": [block, "", note],
                                               "data": data})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
