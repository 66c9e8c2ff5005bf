"""The offline index build job: sources -> pages -> chunks -> vectors -> published version."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.adapt import AdaptedModel, adapt
from pipelines.checkpoint import CheckpointStore, model_key
from pipelines.chunk import SectionChunker
from pipelines.crawl import check_reachable, crawl
from pipelines.embed import EmbedStats, embed_chunks
from pipelines.local_source import list_files, read_directory
from pipelines.placement import Placement
from pipelines.refresh import PageChanges, Revalidation, content_fingerprint
from ragcore.documents import Chunk, Page
from ragcore.guards.chunk_scan import ChunkScanner, ScanResult
from ragcore.index_format import publish
from utils.errors import InputError
from utils.guard_settings import ChunkScanSettings
from utils.logs import get_logger
from utils.models import check_embedding_model
from utils.settings import BuildSettings

CHECKPOINT_DIR = ".checkpoints"
log = get_logger("build")


@dataclass
class BuildSummary:
    """What a build did, printed at the end and returned to callers."""

    version_path: Path
    pages: int
    sections: int
    chunks: int
    embed: EmbedStats
    stage_seconds: dict[str, float] = field(default_factory=dict)
    guard_scan: dict[str, Any] = field(default_factory=dict)
    placement: Placement = field(default_factory=Placement)
    changes: PageChanges | None = None  # set by --refresh
    published: bool = True
    adapted: dict[str, dict[str, Any]] = field(default_factory=dict)  # set by --adapt

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        total = sum(self.stage_seconds.values())
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in self.stage_seconds.items())
        refresh = [self.changes.line()] if self.changes else []
        if not self.published:
            return [*refresh, f"nothing changed: CURRENT stays on {self.version_path}",
                    f"stages: {stages}; total {total:.1f}s", self.placement.line()]  # fmt: skip
        rate = self.embed.embedded_chunks / self.embed.seconds if self.embed.seconds else 0.0
        scan = self.guard_scan
        return [
            f"published {self.version_path}",
            *refresh,
            f"pages {self.pages}, sections {self.sections}, chunks {self.chunks} "
            f"(embedded {self.embed.embedded_chunks}, reused {self.embed.reused_chunks})",
            f"injection scan: {scan.get('flagged', 0)} of {scan.get('scanned', 0)} chunks flagged "
            f"({scan.get('action', 'off')}) {scan.get('by_reason', {})}",
            f"stages: {stages}; total {total:.1f}s",
            f"embedding {rate:.1f} chunks/s; end to end {self.chunks / total if total else 0:.1f} "
            "chunks/s",
            *self._adapted_lines(),
            self.placement.line(),
        ]

    def _adapted_lines(self) -> list[str]:
        return [f"adapted {learner}: {r['examples']} examples, {r['steps']} steps, "
                f"{r['seconds']:.0f}s on {r['device']}" + (" (reused)" if r.get("reused") else "")
                for learner, r in self.adapted.items()]  # fmt: skip


def is_url(source: str) -> bool:
    """True for http(s) sources, which are crawled; anything else is a local directory."""
    return source.startswith(("http://", "https://"))


def load_pages(
    settings: BuildSettings,
    placement: Placement | None = None,
    revalidation: Revalidation | None = None,
) -> list[Page]:
    """Crawl the URL sources and read the local ones; duplicates across sources collapse.
    The tasks are counted per node in `placement`; `revalidation` makes the crawl
    conditional."""
    urls = [s for s in settings.sources if is_url(s)]
    pages: dict[str, Page] = {}
    for source in settings.sources:
        if not is_url(source):
            for page in read_directory(Path(source).expanduser(), placement=placement):
                pages.setdefault(page.url, page)
    if urls:
        for page in crawl(urls, settings.crawl, placement=placement, revalidation=revalidation):
            pages.setdefault(page.url, page)
    return list(pages.values())


def preflight(settings: BuildSettings) -> None:
    """Cheap checks before Ray starts, so bad input fails in a second with one clear line."""
    check_embedding_model(settings.embedding.model_name)
    for source in settings.sources:
        if is_url(source):
            check_reachable(source, settings.crawl)
        elif not list_files(Path(source).expanduser()):
            raise InputError(f"source {source} holds no .html, .md, .rst or .txt files")


def run_build(settings: BuildSettings) -> BuildSummary:
    """Run the whole job. Ray must be initialised. Raises InputError on bad input; publishes
    nothing unless every stage succeeded."""
    stages: dict[str, float] = {}
    run_id = uuid.uuid4().hex[:12]

    start = time.perf_counter()
    placement = Placement()
    revalidation = Revalidation.load(settings.index_dir) if settings.refresh else None
    pages = load_pages(settings, placement, revalidation)
    stages["load"] = time.perf_counter() - start
    sections = sum(len(p.sections) for p in pages)
    if sections == 0:
        raise InputError(
            f"the sources hold no readable text ({len(pages)} pages): nothing to index"
        )
    if revalidation is None:
        published = index_pages(pages, settings, run_id)
        return _summary(published, pages, sections, stages, placement)
    changes = revalidation.changes(pages)
    if revalidation.version and not changes.any:
        unchanged = _unchanged_version(pages, settings, revalidation, stages)
        if unchanged is not None:
            nothing = EmbedStats(0, 0, 0, 0, 0.0, 0)
            return BuildSummary(unchanged, len(pages), sections, 0, nothing, stages,
                                placement=placement, changes=changes, published=False)  # fmt: skip
    extra = {"refresh": {"from": revalidation.version, **changes.counts()}}
    published = index_pages(pages, settings, run_id, extra)
    return _summary(published, pages, sections, stages, placement, changes)


def _summary(
    published: IndexedPages,
    pages: list[Page],
    sections: int,
    stages: dict[str, float],
    placement: Placement,
    changes: PageChanges | None = None,
) -> BuildSummary:
    stages.update(published.stage_seconds)
    placement.merge(published.embed.placement)
    return BuildSummary(published.path, len(pages), sections, published.chunks,
                        published.embed, stages, published.guard_scan, placement,
                        changes, adapted=published.adapted)  # fmt: skip


def _unchanged_version(
    pages: list[Page], settings: BuildSettings, revalidation: Revalidation, stages: dict[str, float]
) -> Path | None:
    """The previous version's path when these pages would publish the same content under the
    same settings (a changed setting still republishes), else None."""
    start = time.perf_counter()
    chunks = SectionChunker(settings.chunking).chunk_pages(pages)
    stages["chunk"] = time.perf_counter() - start
    if content_fingerprint(chunks, settings) != revalidation.fingerprint:
        return None
    assert revalidation.version is not None
    return settings.index_dir / revalidation.version


@dataclass
class IndexedPages:
    """What `index_pages` published."""

    path: Path
    chunks: int
    embed: EmbedStats
    stage_seconds: dict[str, float]
    guard_scan: dict[str, Any]
    adapted: dict[str, dict[str, Any]] = field(default_factory=dict)


def scan_chunks(
    chunks: list[Chunk], matrix: np.ndarray, settings: ChunkScanSettings
) -> tuple[list[Chunk], np.ndarray, ScanResult]:
    """The chunks and vectors to serve, and the scan (flagged chunks are left out of both)."""
    if settings.action == "off":
        return chunks, matrix, ScanResult("off", served=list(range(len(chunks))))
    scan = ChunkScanner(settings.classifier_threshold).scan(chunks, matrix, settings.action)
    for flagged in scan.flagged:
        log.warning(
            "chunk flagged as a prompt injection",
            extra={**flagged.record(), "action": settings.action},
        )
    return [chunks[i] for i in scan.served], matrix[scan.served], scan


def index_pages(
    pages: list[Page],
    settings: BuildSettings,
    run_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> IndexedPages:
    """Chunk -> embed (Ray actor pool, checkpointed) -> publish: the one path from pages to a
    published version, used by the build job and by the evaluation harness. Ray must be up."""
    run_id = run_id or uuid.uuid4().hex[:12]
    stages: dict[str, float] = {}
    start = time.perf_counter()
    chunker = SectionChunker(settings.chunking)
    chunks = chunker.chunk_pages(pages)
    stages["chunk"] = time.perf_counter() - start
    store = CheckpointStore(
        settings.index_dir / CHECKPOINT_DIR,
        model_key(settings.embedding.model_name, settings.chunking.prepend_titles),
    )
    vectors, embed_stats = embed_chunks(
        chunks, settings.embedding, settings.chunking.prepend_titles, store, run_id
    )
    stages["embed"] = embed_stats.seconds
    start = time.perf_counter()
    served, matrix, scan = scan_chunks(chunks, np.stack([vectors[c.id] for c in chunks]),
                                       settings.guard_scan)  # fmt: skip
    stages["scan"] = time.perf_counter() - start
    if not served:
        raise InputError(f"every one of the {len(chunks)} chunks was flagged as a prompt "
                         "injection: nothing to serve (see the build log)")  # fmt: skip
    models = adapt_models(served, matrix, settings, embed_stats.placement, stages)
    if "embedder" in models:  # the corpus is served in the adapted embedder's space
        matrix = reembed(served, models["embedder"], settings, run_id, stages)
    start = time.perf_counter()
    meta = {"run_id": run_id, "chunker_fingerprint": chunker.fingerprint,
            "content_fingerprint": content_fingerprint(chunks, settings),
            "guard_scan": scan.summary(), **(extra or {})}  # fmt: skip
    quarantine = scan.flagged if scan.action == "quarantine" else []
    path = publish(served, matrix, settings, num_documents=len(pages), extra=meta,
                   quarantine=[f.quarantine_record() for f in quarantine], pages=pages,
                   models={m.learner: (m.path, m.record) for m in models.values()})  # fmt: skip
    stages["publish"] = time.perf_counter() - start
    adapted = {m.learner: m.record for m in models.values()}
    return IndexedPages(path, len(served), embed_stats, stages, scan.summary(), adapted)


def adapt_models(
    chunks: list[Chunk],
    matrix: np.ndarray,
    settings: BuildSettings,
    placement: Placement,
    stages: dict[str, float],
) -> dict[str, AdaptedModel]:
    """With `--adapt`: the learners trained on the served chunks, by learner."""
    if not settings.adapt.enabled:
        return {}
    start = time.perf_counter()
    models = adapt(chunks, matrix, settings, placement)
    stages["adapt"] = time.perf_counter() - start
    return {m.learner: m for m in models}


def reembed(
    chunks: list[Chunk],
    model: AdaptedModel,
    settings: BuildSettings,
    run_id: str,
    stages: dict[str, float],
) -> np.ndarray:
    """The chunks' vectors from the adapted embedder (checkpointed under its own model key)."""
    titles = settings.chunking.prepend_titles
    embedding = settings.embedding.model_copy(update={"model_name": str(model.path)})
    store = CheckpointStore(settings.index_dir / CHECKPOINT_DIR, model_key(str(model.path), titles))
    vectors, stats = embed_chunks(chunks, embedding, titles, store, run_id)
    stages["re-embed"] = stats.seconds
    return np.stack([vectors[c.id] for c in chunks])
