"""`build_index.py --adapt` end to end on the CPU, on the project's own guide/ pages: both
learners train (few steps: small settings, the real code path), the version carries the models,
the service loads them from it and refuses a mismatch, and a kill during training resumes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.adapt import examples_key
from ragcore.adapt.pairs import TrainingExample
from ragcore.embedding import SentenceEmbedder
from ragcore.index_format import MANIFEST_FILE, current_version, load_index
from ragcore.index_manager import IndexManager
from ragcore.search import SearchEngine
from tests.helpers import RecordingMetrics, wait_for
from utils.paths import PROJECT_ROOT
from utils.settings import BuildSettings, ServiceSettings

pytestmark = pytest.mark.integration
GUIDE = PROJECT_ROOT / "guide"
SMALL = {  # a few steps of each learner: what the suite can afford on 2 cores
    "RAG_BUILD__ADAPT__BATCH_SIZE": "8",
    "RAG_BUILD__ADAPT__MAX_LENGTH": "64",
    "RAG_BUILD__ADAPT__RERANKER_LAYERS": "1",
    "RAG_BUILD__ADAPT__NEGATIVES": "1",
    "RAG_BUILD__ADAPT__CHECKPOINT_STEPS": "2",
}


def adapt_command(index_dir: Path, *learners: str, queries: int = 48) -> list[str]:
    return [sys.executable, "build_index.py", "--source", str(GUIDE), "--index-dir",
            str(index_dir), "--adapt", "--adapt-max-queries", str(queries),
            "--adapt-learners", *learners]  # fmt: skip


def run_adapt(
    index_dir: Path, *learners: str, queries: int = 48
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(adapt_command(index_dir, *learners, queries=queries), cwd=PROJECT_ROOT,
                          env={**os.environ, **SMALL}, text=True, capture_output=True,
                          timeout=900, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def adapted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("adapted")
    result = run_adapt(index_dir, "embedder", "reranker")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "adapted embedder:" in result.stdout and "adapted reranker:" in result.stdout
    assert "adapt embedder: step" in result.stdout + result.stderr  # progress with time left
    return index_dir


def test_the_version_names_its_models_and_serves_vectors_of_the_adapted_embedder(
    adapted: Path,
) -> None:
    published = load_index(adapted)  # verifies every model file's checksum
    manifest = json.loads((published.path / MANIFEST_FILE).read_text())
    for learner in ("embedder", "reranker"):
        record = manifest["adapted"][learner]
        assert record["device"] == "cpu" and record["steps"] > 0 and record["examples"] > 0
        assert record["settings"]["max_length"] == 64 and record["base_model"]
        assert any(k.startswith(f"models/{learner}/") for k in manifest["checksums"])
    assert manifest["adapted"]["reranker"]["settings"]["reranker_layers"] == 1
    # The corpus was re-embedded by the adapted model: its stored vectors are that model's.
    own = SentenceEmbedder(published.query_model)
    chunk = published.chunks[0]
    stored = published.index.reconstruct(0)
    assert float(own.embed([chunk.embed_text(True)])[0] @ stored) > 0.999
    base = SentenceEmbedder(published.embedding_model)
    assert float(base.embed([chunk.embed_text(True)])[0] @ stored) < 0.999


def test_the_service_loads_the_versions_models_and_reranks_with_them(adapted: Path) -> None:
    from ragcore.embedding import LocalQueryEmbedder

    settings = ServiceSettings(index_dir=adapted)
    manager = IndexManager(settings)
    assert manager.refresh()
    _, models = manager.require_state()
    assert models.query_embedder is not None and models.reranker is not None
    assert models.query_embedder.model_name.endswith("models/embedder")
    metrics = RecordingMetrics()
    engine = SearchEngine(LocalQueryEmbedder(settings.embedding_model), manager, 8, 60.0, metrics)
    outcome = asyncio.run(engine.search("How do I deploy the service?", 3))
    assert len(outcome.hits) == 3 and metrics.reranks == ["reranked"]


def test_the_service_refuses_a_mismatched_model(adapted: Path, tmp_path: Path) -> None:
    other = ServiceSettings(index_dir=adapted, embedding_model=str(tmp_path))
    manager = IndexManager(other)
    assert not manager.refresh()
    assert "was built with embedding model" in manager.readiness().reason
    copy = tmp_path / "copy"
    shutil.copytree(adapted, copy, ignore=shutil.ignore_patterns(".checkpoints"))
    version = current_version(copy)
    weights = next((copy / str(version) / "models" / "reranker").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-8] + b"tampered")
    manager = IndexManager(ServiceSettings(index_dir=copy))
    assert not manager.refresh()
    assert "fails its checksum" in manager.readiness().reason


def test_the_checkpoint_key_follows_the_examples_and_training_settings_not_the_learners() -> None:
    examples = [TrainingExample("q", "title", "positive text", ("negative text",))]
    base = BuildSettings(adapt={"learners": ["embedder"]})
    key = examples_key(examples, base)
    both = BuildSettings(adapt={"learners": ["embedder", "reranker"], "enabled": True})
    assert examples_key(examples, both) == key  # adding the reranker reuses the embedder
    assert examples_key(examples, BuildSettings(adapt={"learning_rate": 1e-5})) != key
    other = [TrainingExample("q", "title", "other positive", ("negative text",))]
    assert examples_key(other, base) != key


def test_a_kill_during_training_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    proc = subprocess.Popen(adapt_command(index_dir, "embedder", queries=96), cwd=PROJECT_ROOT,
                            env={**os.environ, **SMALL}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    trainer = index_dir / ".checkpoints" / "adapt"
    try:
        wait_for(lambda: list(trainer.glob("*/trainer-embedder/checkpoint-*/trainer_state.json")),
                 600, "the first training checkpoint")  # fmt: skip
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert current_version(index_dir) is None  # killed mid-training: nothing published
    result = run_adapt(index_dir, "embedder", queries=96)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((index_dir / str(current_version(index_dir)) / MANIFEST_FILE).read_text())
    embedder = record["adapted"]["embedder"]
    assert embedder["resumed_from_step"] >= 2 and embedder["steps"] > embedder["resumed_from_step"]
    assert np.isfinite(load_index(index_dir).index.reconstruct(0)).all()
