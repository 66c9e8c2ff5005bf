"""The on-disk index format: the one module that both writes and reads a published version.

Layout of `DIR/<version>/`: `index.faiss`, `chunks.jsonl` (one JSON chunk a line, in FAISS row
order), `pages.jsonl` (the cleaned pages with their HTTP validators, which `--refresh` revalidates),
`models/<learner>/` (what `--adapt` trained on the corpus; the manifest's `adapted` names them)
and `manifest.json`. A version is staged under a dot-name and renamed into place only when
complete, and `CURRENT` (a one-line file) is replaced by rename: a crash at any moment leaves
`CURRENT` on the previous good version. Readers verify checksums and the embedding model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ragcore.documents import Chunk, Page
from utils.atomic import atomic_write_text, fsync_dir
from utils.errors import IndexNotReadyError, ModelMismatchError
from utils.models import resolve_embedding_model
from utils.settings import BuildSettings

CURRENT = "CURRENT"
INDEX_FILE = "index.faiss"
CHUNKS_FILE = "chunks.jsonl"
MANIFEST_FILE = "manifest.json"
QUARANTINE_FILE = "quarantine.jsonl"  # flagged chunks, kept for review and never loaded
PAGES_FILE = "pages.jsonl"  # the pages the version was cut from; never loaded by the service
MODELS_DIR = "models"  # models trained on this version's corpus (--adapt): models/<learner>/
FORMAT_VERSION = 1


# --- writing ---------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_faiss_index(vectors: np.ndarray, index_type: str, hnsw_m: int) -> faiss.Index:
    """Inner-product index over unit vectors (cosine): exact flat, or HNSW for large corpora."""
    dim = vectors.shape[1]
    index: faiss.Index
    if index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 200
        index.hnsw.efSearch = 128
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """One JSON record a line, fsynced."""
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    _fsync_file(path)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records `_write_jsonl` wrote."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _manifest(
    staging: Path, version: str, now: datetime, vectors: np.ndarray, settings: BuildSettings
) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "version": version,
        "embedding_model": settings.embedding.model_name,
        "embedding_dim": int(vectors.shape[1]),
        "normalized": True,
        "metric": "inner_product",
        "index_type": settings.index.index_type,
        "chunk_size": settings.chunking.chunk_size,
        "chunk_overlap": settings.chunking.chunk_overlap,
        "prepend_titles": settings.chunking.prepend_titles,
        "created_at": now.isoformat(),
        "sources": list(settings.sources),
        "checksums": {name: sha256_file(staging / name) for name in (INDEX_FILE, CHUNKS_FILE)},
    }


def _copy_models(
    staging: Path, models: dict[str, tuple[Path, dict[str, Any]]]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Copy each learner's model directory into `models/<learner>/`; the manifest's `adapted`
    records and the checksums of every copied file (paths relative to the version)."""
    adapted: dict[str, Any] = {}
    checksums: dict[str, str] = {}
    for learner, (source, record) in models.items():
        target = staging / MODELS_DIR / learner
        shutil.copytree(source, target)
        files = sorted(p for p in target.rglob("*") if p.is_file())
        for path in files:
            _fsync_file(path)
            checksums[path.relative_to(staging).as_posix()] = sha256_file(path)
        adapted[learner] = {"path": f"{MODELS_DIR}/{learner}", **record}
    return adapted, checksums


def publish(
    chunks: list[Chunk],
    vectors: np.ndarray,
    settings: BuildSettings,
    num_documents: int,
    extra: dict[str, Any] | None = None,
    quarantine: list[dict[str, Any]] | None = None,
    pages: list[Page] | None = None,
    models: dict[str, tuple[Path, dict[str, Any]]] | None = None,
) -> Path:
    """Write a new version directory and switch `CURRENT` to it; returns the version path.
    `quarantine` (flagged chunks) and `pages` go to their own files, which the service never
    loads; `models` (learner -> trained model directory and its record) are copied in, named
    in the manifest's `adapted` with checksums. With an adapted `embedder`, `vectors` are
    its vectors, and queries must be embedded by it."""
    root = settings.index_dir
    root.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    version = f"{now:%Y%m%dT%H%M%S}Z-{uuid.uuid4().hex[:6]}"
    staging = root / f".staging-{version}"
    staging.mkdir()
    try:
        index = build_faiss_index(vectors, settings.index.index_type, settings.index.hnsw_m)
        faiss.write_index(index, str(staging / INDEX_FILE))
        _write_jsonl(staging / CHUNKS_FILE, [chunk.to_dict() for chunk in chunks])
        if quarantine:
            _write_jsonl(staging / QUARANTINE_FILE, quarantine)
        if pages is not None:
            _write_jsonl(staging / PAGES_FILE, [page.to_dict() for page in pages])
        _fsync_file(staging / INDEX_FILE)
        manifest = _manifest(staging, version, now, vectors, settings)
        manifest.update(num_documents=num_documents, num_chunks=len(chunks), **(extra or {}))
        if models:
            manifest["adapted"], checksums = _copy_models(staging, models)
            manifest["checksums"].update(checksums)
        atomic_write_text(staging / MANIFEST_FILE, json.dumps(manifest, indent=2))
        final = root / version
        os.replace(staging, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    atomic_write_text(root / CURRENT, version + "\n")
    return final


# --- reading ---------------------------------------------------------------------------------


def current_version(root: Path) -> str | None:
    """The version `CURRENT` names, or None when nothing is published."""
    pointer = root / CURRENT
    if not pointer.exists():
        return None
    return pointer.read_text(encoding="utf-8").strip() or None


def read_pages(root: Path, version: str) -> list[Page] | None:
    """The pages a version was cut from, or None for a version published without them."""
    path = root / version / PAGES_FILE
    if not path.exists():
        return None
    return [Page.from_dict(record) for record in _read_jsonl(path)]


def read_manifest(root: Path, version: str) -> dict[str, Any]:
    """The manifest of one version (IndexNotReadyError when it has none)."""
    path = root / version / MANIFEST_FILE
    if not path.exists():
        raise IndexNotReadyError(f"index version {version} has no {MANIFEST_FILE} in {root}")
    manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return manifest


@dataclass(frozen=True)
class PublishedIndex:
    """A loaded index version: FAISS rows line up with `chunks`."""

    path: Path
    manifest: dict[str, Any]
    index: faiss.Index
    chunks: list[Chunk]

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def embedding_model(self) -> str:
        """The base model the version was built from (what the service is configured with)."""
        return str(self.manifest["embedding_model"])

    def adapted_model(self, learner: str) -> Path | None:
        """The directory of the model this version trained for `learner`, if it has one."""
        record = (self.manifest.get("adapted") or {}).get(learner)
        return self.path / record["path"] if record else None

    @property
    def query_model(self) -> str:
        """What embeds queries for this version: its adapted embedder, else the base model."""
        adapted = self.adapted_model("embedder")
        return str(adapted) if adapted is not None else self.embedding_model


def same_model(a: str, b: str) -> bool:
    """True when two model names or paths resolve to the same model."""
    return a == b or resolve_embedding_model(a) == resolve_embedding_model(b)


def check_model(manifest: dict[str, Any], embedding_model: str | None) -> None:
    """Refuse a query model other than the one the index was built with."""
    built_with = str(manifest["embedding_model"])
    if embedding_model is not None and not same_model(built_with, embedding_model):
        raise ModelMismatchError(
            f"index {manifest['version']} was built with embedding model {built_with!r}, "
            f"not {embedding_model!r}: query with {built_with!r} or rebuild the index"
        )


def load_index(
    index_dir: Path, version: str | None = None, embedding_model: str | None = None
) -> PublishedIndex:
    """Load `version` (default: what CURRENT names), verifying checksums and the model."""
    version = version or current_version(index_dir)
    if version is None:
        raise IndexNotReadyError(
            f"no index published in {index_dir}: run `python build_index.py --index-dir "
            f"{index_dir}` first"
        )
    path = index_dir / version
    manifest = read_manifest(index_dir, version)
    check_model(manifest, embedding_model)
    for name, expected in manifest["checksums"].items():
        if sha256_file(path / name) != expected:
            raise IndexNotReadyError(f"index version {version}: {name} fails its checksum")
    index = faiss.read_index(str(path / INDEX_FILE))
    chunks = [Chunk.from_dict(record) for record in _read_jsonl(path / CHUNKS_FILE)]
    if index.ntotal != len(chunks):
        raise IndexNotReadyError(
            f"index version {version}: {index.ntotal} vectors but {len(chunks)} chunks"
        )
    return PublishedIndex(path, manifest, index, chunks)
