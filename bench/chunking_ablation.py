"""Chunk size, overlap and titles on the two dev sets, written to docs/benchmarks.md.

    python bench/chunking_ablation.py [--work-dir /tmp/rag-chunking] [--device cpu]
        [--configs 400:50:1 800:100:1 ...] [--scifact-configs 400:50:1 800:100:1]
        [--export-texts DIR | --vectors DIR]

Each configuration re-chunks the same crawl of the Ray docs mirror (crawled once over loopback
HTTP and cached in --work-dir) and the SciFact corpus, embeds every chunk with the index's model,
and scores through `HybridRetriever` with the service's retrieval defaults.

Embedding ~25k chunks per configuration takes about half an hour on 2 CPU cores, so the
embedding can be done elsewhere: `--export-texts DIR` writes each configuration's chunk texts
and stops; `python bench/embed_texts.py` turns them into vectors on a GPU machine; `--vectors DIR`
then reads those instead of embedding here. Query embeddings are always computed here.
Results go to bench/results/chunking_ablation.json and their section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import pickle
import sys
from pathlib import Path
from typing import Any

try:
    from bench import common
except ModuleNotFoundError:  # `python bench/x.py` puts only bench/ on sys.path
    import common  # type: ignore[no-redef]

import faiss
import numpy as np

from bench.report import table, table_lines
from evaluation.retrieval import (
    BeirData,
    QAItem,
    Searcher,
    beir_pages,
    load_beir,
    load_qa,
    score_beir,
    score_qa,
)
from pipelines.chunk import SectionChunker
from pipelines.crawl import crawl
from ragcore.documents import Chunk, Page
from ragcore.embedding import SentenceEmbedder
from ragcore.index_format import PublishedIndex
from ragcore.retrieval import Mode
from utils.ray_runtime import init_ray
from utils.settings import ChunkingSettings, CrawlSettings, EmbeddingSettings, RetrievalSettings
from utils.static_site import StaticSite, ray_docs_seeds, unpack_ray_docs

TITLE = "Retrieval quality: chunk size and titles"
DEFAULT_CONFIGS = ["200:25:1", "300:50:1", "400:50:1", "400:0:1", "500:50:1", "600:75:1"]
DEFAULT_CONFIGS += ["800:100:1", "800:100:0", "1200:150:1", "2000:200:1"]
MODES: tuple[Mode, ...] = ("dense", "lexical", "hybrid")


def parse(spec: str) -> ChunkingSettings:
    """size:overlap:titles, e.g. 400:50:1."""
    size, overlap, titles = spec.split(":")
    return ChunkingSettings(
        chunk_size=int(size), chunk_overlap=int(overlap), prepend_titles=titles == "1"
    )


def label(c: ChunkingSettings) -> str:
    """The configuration's file-name label, e.g. c400-o50-t1."""
    return f"c{c.chunk_size}-o{c.chunk_overlap}-t{int(c.prepend_titles)}"


def mirror_pages(work: Path) -> list[Page]:
    """The Ray docs mirror as the build job crawls it, cached so every config sees one crawl."""
    cache = work / "ray-pages.pkl"
    if cache.exists():
        return list(pickle.loads(cache.read_bytes()))
    site = unpack_ray_docs(common.RAY_DOCS_ARCHIVE, work / "site")
    init_ray(None, num_cpus=8)
    with StaticSite(site) as server:
        seeds = ray_docs_seeds(server.url, work / "site")
        pages = crawl(seeds, CrawlSettings(max_depth=4))
    cache.write_bytes(pickle.dumps(pages))
    return pages


def vectors_for(
    name: str, texts: list[str], vectors_dir: Path | None, embedder: SentenceEmbedder
) -> np.ndarray:
    """Precomputed vectors from `vectors_dir` when there, else embedded here."""
    parts = sorted(
        (vectors_dir.glob(f"{name}.p*.npy") if vectors_dir else []),
        key=lambda p: int(p.name.rsplit(".p", 1)[1].split(".")[0]),
    )
    if parts:
        matrix = np.concatenate([np.load(p) for p in parts]).astype(np.float32)
        if len(matrix) != len(texts):
            raise SystemExit(f"{name}: {len(matrix)} vectors for {len(texts)} chunks; re-export")
        return matrix
    return embedder.embed(texts, batch_size=128)


def searcher_for(
    chunks: list[Chunk], matrix: np.ndarray, c: ChunkingSettings, embedder: SentenceEmbedder
) -> Searcher:
    """The service's retrieval over these chunks and vectors, with the retrieval defaults."""
    index = faiss.IndexFlatIP(matrix.shape[1])
    index.add(matrix)
    manifest = {
        "version": label(c),
        "embedding_model": embedder.model_name,
        "prepend_titles": c.prepend_titles,
    }
    published = PublishedIndex(Path("."), manifest, index, chunks)
    return Searcher(published, RetrievalSettings(), embedder=embedder)


def parse_args() -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/rag-chunking"))
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    parser.add_argument("--scifact-configs", nargs="*", default=["400:50:1", "800:100:1"])
    parser.add_argument("--device", default="cpu", help="where chunks are embedded here")
    parser.add_argument("--export-texts", type=Path, help="write chunk texts here and stop")
    parser.add_argument("--vectors", type=Path, help="precomputed vectors (bench/embed_texts.py)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    return parser.parse_args()


def export_texts(chunked: dict[tuple[str, str], list[Chunk]], out: Path) -> None:
    """Each configuration's embedded texts as OUT/<corpus>-<label>.json.gz."""
    out.mkdir(parents=True, exist_ok=True)
    for (corpus, name), chunks in chunked.items():
        titles = name.endswith("t1")
        with gzip.open(out / f"{corpus}-{name}.json.gz", "wt") as handle:
            json.dump([c.embed_text(titles) for c in chunks], handle)
        print(f"{corpus}-{name}: {len(chunks)} chunks", flush=True)


def scores(
    searcher: Searcher, corpus: str, qa: list[QAItem], scifact: BeirData | None
) -> dict[str, float]:
    """One configuration's cells: Ray page hit@k and MRR, or SciFact nDCG@10, per mode."""
    row: dict[str, float] = {}
    for mode in MODES:
        if corpus == "ray":
            m = score_qa(searcher, qa, [1, 5, 10], mode)[0]
            row[f"ray {mode}"] = m["page_hit@5"]
            if mode == "hybrid":
                row.update(h1=m["page_hit@1"], h10=m["page_hit@10"], mrr=m["mrr"])
        elif scifact is not None:
            row[f"sci {mode}"] = score_beir(searcher, scifact, mode)["ndcg@10"]
    return row


COLUMNS = ["chunks", "ray dense", "ray lexical", "ray hybrid", "h1", "h10", "mrr", "sci dense",
           "sci lexical", "sci hybrid"]  # fmt: skip
HEADERS = ["chunks chars/overlap, titles", "Ray chunks", "Ray hit@5 dense", "lexical", "hybrid",
           "hybrid hit@1", "hybrid hit@10", "hybrid MRR", "SciFact nDCG@10 dense", "lexical",
           "hybrid"]  # fmt: skip
INTRO = (
    "`python bench/chunking_ablation.py`: one crawl of the docs.ray.io mirror (2,860 "
    "pages, no `_modules/` listings) and the SciFact corpus, re-chunked per row, embedded "
    "with all-MiniLM-L6-v2 and scored with the service's retrieval defaults (hybrid RRF "
    "k 10, one chunk per page, page bonus 0.2). Ray columns: page hit@k on the 213 dev "
    "questions (one question is 0.005; the standard error of a hit@5 near 0.6 is about "
    "0.03). SciFact: nDCG@10 over the 809 training claims."
)


def results_table(rows: dict[str, dict[str, float]]) -> dict[str, Any]:
    """One row per chunking, Ray and SciFact columns side by side."""
    body = []
    for name, row in rows.items():
        size, overlap, titles = name[1:].split("-")
        title = f"{size}/{overlap[1:]}, {'titles' if titles == 't1' else 'no titles'}"
        body.append([title, *(row.get(k) for k in COLUMNS)])
    return table(HEADERS, body, "l" + "r" * len(COLUMNS), [None, "d"] + [".3f"] * 9)


def main() -> int:
    """Chunk every configuration, embed (or read vectors), score, write the results."""
    args = parse_args()
    if not common.QA_FILE.exists():
        print(f"skipped: {common.QA_FILE.parent} is not present", file=sys.stderr)
        return 0
    args.work_dir.mkdir(parents=True, exist_ok=True)
    corpora = {"ray": mirror_pages(args.work_dir)}
    scifact = load_beir(common.SCIFACT, "train") if common.SCIFACT.exists() else None
    if scifact is not None:
        corpora["scifact"] = beir_pages(scifact.corpus)
    plan = [("ray", parse(s)) for s in args.configs]
    plan += [("scifact", parse(s)) for s in args.scifact_configs if scifact is not None]
    chunked = {
        (corpus, label(c)): SectionChunker(c).chunk_pages(corpora[corpus]) for corpus, c in plan
    }
    if args.export_texts:
        export_texts(chunked, args.export_texts)
        return 0
    embedder = SentenceEmbedder(EmbeddingSettings().model_name, device=args.device)
    qa = load_qa(common.QA_FILE)
    rows: dict[str, dict[str, float]] = {}
    for corpus, c in plan:
        name = label(c)
        chunks = chunked[(corpus, name)]
        texts = [ch.embed_text(c.prepend_titles) for ch in chunks]
        matrix = vectors_for(f"{corpus}-{name}", texts, args.vectors, embedder)
        row = rows.setdefault(name, {"chunks": len(chunks)} if corpus == "ray" else {})
        row.update(scores(searcher_for(chunks, matrix, c, embedder), corpus, qa, scifact))
        print(name, corpus, row, flush=True)
    block = results_table(rows)
    print("\n".join(table_lines(block)))
    if not args.no_write:
        payload = {"title": TITLE, "intro": INTRO, "body": [block], "data": rows}
        common.write_results("chunking_ablation", payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
