"""Open a published index version, verified against its manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss

from pipelines.documents import Chunk
from pipelines.publish import (
    CHUNKS_FILE,
    INDEX_FILE,
    MANIFEST_FILE,
    current_version,
    sha256_file,
)
from utils.errors import IndexNotReadyError, ModelMismatchError
from utils.models import resolve_embedding_model


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
        return str(self.manifest["embedding_model"])


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
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.exists():
        raise IndexNotReadyError(f"index version {version} has no {MANIFEST_FILE} in {index_dir}")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    check_model(manifest, embedding_model)
    for name, expected in manifest["checksums"].items():
        if sha256_file(path / name) != expected:
            raise IndexNotReadyError(f"index version {version}: {name} fails its checksum")
    index = faiss.read_index(str(path / INDEX_FILE))
    with (path / CHUNKS_FILE).open(encoding="utf-8") as handle:
        chunks = [Chunk.from_dict(json.loads(line)) for line in handle if line.strip()]
    if index.ntotal != len(chunks):
        raise IndexNotReadyError(
            f"index version {version}: {index.ntotal} vectors but {len(chunks)} chunks"
        )
    return PublishedIndex(path, manifest, index, chunks)
