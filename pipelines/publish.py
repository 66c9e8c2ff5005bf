"""Write a complete index version, then atomically point `CURRENT` at it.

Layout of `DIR/<version>/`: `index.faiss`, `chunks.jsonl` (one JSON chunk a line, in FAISS row
order) and `manifest.json`. A version is staged under a dot-name and renamed into place only when
complete, and `CURRENT` (a one-line file) is replaced by rename: a crash at any moment leaves
`CURRENT` on the previous good version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from pipelines.documents import Chunk
from utils.atomic import atomic_write_text, fsync_dir
from utils.settings import BuildSettings

CURRENT = "CURRENT"
INDEX_FILE = "index.faiss"
CHUNKS_FILE = "chunks.jsonl"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


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


def publish(
    chunks: list[Chunk],
    vectors: np.ndarray,
    settings: BuildSettings,
    num_documents: int,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a new version directory and switch `CURRENT` to it; returns the version path."""
    root = settings.index_dir
    root.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    version = f"{now:%Y%m%dT%H%M%S}Z-{uuid.uuid4().hex[:6]}"
    staging = root / f".staging-{version}"
    staging.mkdir()
    try:
        index = build_faiss_index(vectors, settings.index.index_type, settings.index.hnsw_m)
        faiss.write_index(index, str(staging / INDEX_FILE))
        with (staging / CHUNKS_FILE).open("w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(json.dumps(chunk.to_dict(), ensure_ascii=False) + "\n")
        for name in (INDEX_FILE, CHUNKS_FILE):
            _fsync_file(staging / name)
        manifest = {
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
            "num_documents": num_documents,
            "num_chunks": len(chunks),
            "created_at": now.isoformat(),
            "sources": list(settings.sources),
            "checksums": {
                INDEX_FILE: sha256_file(staging / INDEX_FILE),
                CHUNKS_FILE: sha256_file(staging / CHUNKS_FILE),
            },
            **(extra or {}),
        }
        atomic_write_text(staging / MANIFEST_FILE, json.dumps(manifest, indent=2))
        final = root / version
        os.replace(staging, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    atomic_write_text(root / CURRENT, version + "\n")
    return final


def current_version(root: Path) -> str | None:
    """The version `CURRENT` names, or None when nothing is published."""
    pointer = root / CURRENT
    if not pointer.exists():
        return None
    return pointer.read_text(encoding="utf-8").strip() or None
