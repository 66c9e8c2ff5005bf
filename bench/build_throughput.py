"""Build-job throughput over the docs.ray.io mirror, against the hardware bound, in one run.

    python bench/build_throughput.py [--index-dir /tmp/bench-index] [--max-pages 5000]

Measures the real build job (crawl over loopback HTTP, clean, chunk, embed through the Ray actor
pool, publish), then encodes the very same chunk texts:
  * in a single-process sentence-transformers loop (the hardware bound for the model here), and
  * the book's way, one model load per Ray task, on a sample of batches.
Figures go to stdout and to the build section of docs/benchmarks.md.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import ray  # noqa: E402

from bench.report import write_section  # noqa: E402
from pipelines.build import run_build  # noqa: E402
from pipelines.index_store import load_index  # noqa: E402
from utils.models import load_sentence_transformer  # noqa: E402
from utils.ray_runtime import init_ray  # noqa: E402
from utils.settings import BuildSettings, CrawlSettings  # noqa: E402
from utils.static_site import StaticSite, ray_docs_seeds, unpack_ray_docs  # noqa: E402

ARCHIVE = ROOT.parent / "shared" / "data" / "ray-docs" / "ray-docs-html.tar.gz"


@ray.remote(num_cpus=1)
def embed_with_fresh_model(model_name: str, texts: list[str]) -> int:
    """The book's pattern: every task loads the model, embeds, and throws it away."""
    import torch

    torch.set_num_threads(1)
    model = load_sentence_transformer(model_name)
    model.encode(texts, batch_size=64, normalize_embeddings=True)
    return len(texts)


def main() -> int:
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
    args = parser.parse_args()
    if not ARCHIVE.exists():
        print(f"skip: {ARCHIVE} is absent")
        return 0
    site = unpack_ray_docs(ARCHIVE, args.work_dir / "site")
    index_dir = args.index_dir or args.work_dir / "index"
    shutil.rmtree(index_dir, ignore_errors=True)  # a cold build: no reused checkpoints
    init_ray(None, num_cpus=8)
    with StaticSite(site) as server:
        settings = BuildSettings(
            sources=ray_docs_seeds(server.url, args.work_dir / "site"),
            index_dir=index_dir,
            crawl=CrawlSettings(max_depth=4, max_pages=args.max_pages),
        )
        wall = time.perf_counter()
        summary = run_build(settings)
        wall = time.perf_counter() - wall
    chunks = load_index(index_dir).chunks
    titles = settings.chunking.prepend_titles
    texts = [c.embed_text(titles) for c in chunks]
    # The bound is a rate, so a fixed random sample of the same chunks measures it without
    # doubling the run time.
    sample_texts = random.Random(0).sample(texts, min(args.bound_sample, len(texts)))

    model = load_sentence_transformer(settings.embedding.model_name)
    start = time.perf_counter()
    model.encode(sample_texts, batch_size=64, normalize_embeddings=True)
    single_s = time.perf_counter() - start
    del model

    sample = [sample_texts[i : i + 64] for i in range(0, 64 * args.book_tasks, 64)]
    start = time.perf_counter()
    done = sum(
        ray.get(
            [embed_with_fresh_model.remote(settings.embedding.model_name, t) for t in sample],
            timeout=1800,
        )
    )
    book_rate = done / (time.perf_counter() - start)
    ray.shutdown()

    st = summary.stage_seconds
    embed_rate = summary.embed.embedded_chunks / summary.embed.seconds
    single_rate = len(sample_texts) / single_s
    rows = [
        ("pages", f"{summary.pages}"),
        ("sections", f"{summary.sections}"),
        ("chunks", f"{summary.chunks}"),
        (
            "crawl + clean (Ray tasks)",
            f"{st['load']:.1f} s, {summary.pages / st['load']:.1f} pages/s",
        ),
        ("chunk", f"{st['chunk']:.1f} s, {summary.chunks / st['chunk']:.0f} chunks/s"),
        (
            "embed (Ray actor pool, incl. model load)",
            f"{st['embed']:.1f} s, {embed_rate:.1f} chunks/s",
        ),
        ("publish", f"{st['publish']:.1f} s"),
        ("end to end", f"{wall:.1f} s, {summary.chunks / wall:.1f} chunks/s"),
        (
            "single-process sentence-transformers loop (bound)",
            f"{single_s:.1f} s, {single_rate:.1f} chunks/s",
        ),
        ("embedding stage / single-process bound", f"{embed_rate / single_rate:.2f}"),
        ("one model load per Ray task (book), sample", f"{book_rate:.1f} chunks/s"),
        ("embedding stage / one load per task", f"{embed_rate / book_rate:.1f}x"),
    ]
    table = ["| measure | value |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in rows]]
    for line in table:
        print(line)
    write_section(
        "Build throughput",
        f"`python bench/build_throughput.py` over the docs.ray.io mirror "
        f"({os.cpu_count()} cores, model {settings.embedding.model_name}, chunk size "
        f"{settings.chunking.chunk_size}, batch {settings.embedding.batch_size}).",
        table,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
