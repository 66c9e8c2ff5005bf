"""The index format's record of adapted models: copied into the version, named in the manifest
with their training settings and checksums, verified on load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.chunk import SectionChunker
from ragcore.documents import Page, Section
from ragcore.index_format import MANIFEST_FILE, load_index, publish
from tests.helpers import MODEL, hash_vector, publish_tiny_index
from utils.errors import IndexNotReadyError
from utils.settings import BuildSettings


def model_dir(root: Path, learner: str) -> Path:
    """A stand-in model directory: two files, one in a subfolder (as sentence-transformers
    writes them)."""
    (root / learner / "1_Pooling").mkdir(parents=True)
    (root / learner / "model.safetensors").write_bytes(b"weights of " + learner.encode())
    (root / learner / "1_Pooling" / "config.json").write_text('{"pooling": "mean"}')
    return root / learner


def publish_with_models(tmp_path: Path) -> Path:
    page = Page("a.md", "A", [Section("a.md", "A", "a", "A", "Replicas scale with load.")])
    chunks = SectionChunker(BuildSettings().chunking).chunk_pages([page])
    settings = BuildSettings(sources=["a"], index_dir=tmp_path / "index",
                             embedding={"model_name": MODEL})  # fmt: skip
    record = {"device": "cpu", "base_model": MODEL, "examples": 12, "steps": 3,
              "settings": {"max_length": 64}, "examples_key": "k1"}  # fmt: skip
    models = {name: (model_dir(tmp_path / "trained", name), record)
              for name in ("embedder", "reranker")}  # fmt: skip
    vectors = np.stack([hash_vector(c.text) for c in chunks])
    return publish(chunks, vectors, settings, 1, models=models)


def test_the_manifest_names_each_model_with_its_settings_and_checksums(tmp_path: Path) -> None:
    version = publish_with_models(tmp_path)
    manifest = json.loads((version / MANIFEST_FILE).read_text())
    assert manifest["embedding_model"] == MODEL  # the base: what the service is configured with
    for learner in ("embedder", "reranker"):
        record = manifest["adapted"][learner]
        assert record["path"] == f"models/{learner}"
        assert record["settings"] == {"max_length": 64} and record["base_model"] == MODEL
        files = {f"models/{learner}/model.safetensors", f"models/{learner}/1_Pooling/config.json"}
        assert files <= set(manifest["checksums"])
        assert (version / "models" / learner / "model.safetensors").exists()
    published = load_index(version.parent, version.name, MODEL)
    assert published.query_model == str(version / "models" / "embedder")
    assert published.adapted_model("reranker") == version / "models" / "reranker"


def test_a_tampered_model_file_is_refused(tmp_path: Path) -> None:
    version = publish_with_models(tmp_path)
    (version / "models" / "reranker" / "model.safetensors").write_bytes(b"other weights")
    with pytest.raises(IndexNotReadyError, match=r"models/reranker/model\.safetensors fails"):
        load_index(version.parent, version.name, MODEL)


def test_a_version_without_models_queries_with_its_base_model(tmp_path: Path) -> None:
    name = publish_tiny_index(tmp_path)
    published = load_index(tmp_path, name)
    assert published.query_model == MODEL and published.adapted_model("embedder") is None
