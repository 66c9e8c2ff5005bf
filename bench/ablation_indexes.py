"""The indexes bench/retrieval_ablation.py scores: one per corpus and chunking, built once
under the work directory by the real build job (the Ray docs mirror crawled over loopback
HTTP; SciFact through the BEIR path of evaluation/retrieval.py) and reused on later runs."""

from __future__ import annotations

from pathlib import Path

from bench.common import RAY_DOCS_ARCHIVE, SCIFACT
from evaluation.retrieval import BeirData, build_beir_index, current_beir_index
from pipelines.build import run_build
from ragcore.index_format import current_version, read_manifest
from utils.ray_runtime import init_ray
from utils.settings import BuildSettings, ChunkingSettings, CrawlSettings
from utils.static_site import StaticSite, ray_docs_seeds, unpack_ray_docs


def parse_chunking(spec: str) -> ChunkingSettings:
    """`size:overlap:titles` (titles 1 or 0) as ChunkingSettings."""
    size, overlap, titles = spec.split(":")
    return ChunkingSettings(
        chunk_size=int(size), chunk_overlap=int(overlap), prepend_titles=titles == "1"
    )


def label(chunking: ChunkingSettings) -> str:
    """How a chunking reads in the table."""
    titles = "titles" if chunking.prepend_titles else "no titles"
    return f"chunks {chunking.chunk_size}/{chunking.chunk_overlap}, {titles}"


def _dir_name(prefix: str, chunking: ChunkingSettings) -> str:
    c = chunking
    return f"{prefix}-c{c.chunk_size}-o{c.chunk_overlap}-t{int(c.prepend_titles)}"


def _matches(index_dir: Path, chunking: ChunkingSettings) -> bool:
    version = current_version(index_dir)
    if version is None:
        return False
    manifest = read_manifest(index_dir, version)
    return all(manifest.get(k) == v for k, v in chunking.model_dump().items())


def ensure_ray_index(work: Path, chunking: ChunkingSettings, reuse: Path | None) -> Path:
    """An index of the Ray docs mirror with this chunking: `reuse` when it matches, else one
    built (once) under `work` by the real build job over a loopback copy of the mirror."""
    if reuse is not None and _matches(reuse, chunking):
        return reuse
    index_dir = work / _dir_name("ray", chunking)
    if _matches(index_dir, chunking):
        return index_dir
    site = unpack_ray_docs(RAY_DOCS_ARCHIVE, work / "site")
    init_ray(None, num_cpus=8)
    with StaticSite(site) as server:
        seeds = ray_docs_seeds(server.url, work / "site")
        settings = BuildSettings(
            sources=seeds, index_dir=index_dir, chunking=chunking, crawl=CrawlSettings(max_depth=4)
        )
        print("\n".join(run_build(settings).lines()), flush=True)
    return index_dir


def ensure_scifact_index(work: Path, data: BeirData, chunking: ChunkingSettings) -> Path:
    """The SciFact corpus index for this chunking, built once under `work`."""
    index_dir = work / _dir_name("scifact", chunking)
    settings = BuildSettings(sources=[str(SCIFACT)], index_dir=index_dir, chunking=chunking)
    if current_beir_index(data, settings) is None:
        init_ray(None, num_cpus=8)
        build_beir_index(data, settings)
    return settings.index_dir
