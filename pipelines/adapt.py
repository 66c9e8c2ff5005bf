"""Corpus adaptation in the build job (`build_index.py --adapt`): train on the corpus as Ray work.

After chunking, embedding and the injection scan, the driver builds training examples from the
served chunks (queries from every section, hard negatives from the hybrid retriever over the
fresh vectors). Then one Ray task per learner trains it: on a GPU when the cluster has one, else
on the CPU. A task writes its trainer checkpoints under the index directory's
`.checkpoints/adapt/<key>/`, keyed by the examples and settings, so a killed build resumes
training where it stopped, and a finished model is reused as it is. `publish` copies the models
into the version and names them, with checksums, in the manifest.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray

from pipelines.placement import Placement, this_node
from ragcore.adapt.pairs import TrainingExample, corpus_examples, hybrid_ranker
from ragcore.adapt.train import train_embedder, train_reranker
from ragcore.documents import Chunk
from ragcore.embedding import SentenceEmbedder
from ragcore.index_format import PublishedIndex, build_faiss_index
from ragcore.retrieval import HybridRetriever
from utils.atomic import atomic_write_text
from utils.logs import get_logger
from utils.models import resolve_embedding_model
from utils.settings import AdaptSettings, BuildSettings, RetrievalSettings

TRAIN_TIMEOUT_S = 6 * 3600.0
PROGRESS_POLL_S = 5.0
PROGRESS_FILE = "progress.json"  # the training task's step, for the driver to print
TRAINED_FILE = "trained.json"  # written last: a model directory holding it is complete
LEARNERS = {"reranker": train_reranker, "embedder": train_embedder}
log = get_logger("adapt")


@dataclass(frozen=True)
class AdaptedModel:
    """A trained model ready to publish: where it is, and the manifest's record of it."""

    learner: str
    path: Path
    record: dict[str, Any]


def examples_key(examples: list[TrainingExample], settings: BuildSettings) -> str:
    """Digest of the training data and settings: names the checkpoint directory, so a resumed
    training only ever continues the same run. Which learners run is left out: adding the
    reranker to a build reuses the embedder already trained on the same examples."""
    training = settings.adapt.model_dump_json(exclude={"enabled", "learners"})
    digest = hashlib.sha256(training.encode())
    digest.update(settings.embedding.model_name.encode())
    for example in examples:
        digest.update(json.dumps([example.query, example.positive, example.negatives]).encode())
    return digest.hexdigest()[:16]


def _report_to(path: Path, every: int) -> Any:
    """A progress callback that keeps the step and time so far in `path` (on the index
    directory's shared storage: the driver reads it, wherever the task runs)."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def report(step: int, total: int, seconds: float) -> None:
        if step in (1, total) or step % every == 0:
            progress = {"step": step, "total": total, "seconds": round(seconds, 1)}
            atomic_write_text(path, json.dumps(progress))

    return report


def progress_line(learner: str, path: Path) -> str | None:
    """`adapt embedder: step 40/124, 190s, about 400s left`, from a task's progress file."""
    try:
        progress = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    step, total, seconds = progress["step"], progress["total"], progress["seconds"]
    left = seconds / max(step, 1) * (total - step)
    return f"adapt {learner}: step {step}/{total}, {seconds:.0f}s, about {left:.0f}s left"


def wait_printing_progress(ref: Any, learner: str, path: Path) -> Any:
    """The task's result; meanwhile each new progress line is printed."""
    deadline = time.monotonic() + TRAIN_TIMEOUT_S
    shown = None
    while True:
        ready, _ = ray.wait([ref], timeout=PROGRESS_POLL_S)
        line = progress_line(learner, path)
        if line is not None and line != shown:
            print(line, flush=True)
            shown = line
        if ready:
            return ray.get(ref, timeout=60.0)
        if time.monotonic() > deadline:
            raise TimeoutError(f"training the {learner} took over {TRAIN_TIMEOUT_S:.0f}s")


@ray.remote(max_retries=3)  # a lost node: the task runs again elsewhere, from its checkpoints
def train_task(
    learner: str,
    examples: list[TrainingExample],
    base_model: str,
    out_dir: str,
    work_dir: str,
    settings: AdaptSettings,
    device: str,
) -> tuple[str, dict[str, Any]]:
    """Ray task: train `learner` from its newest checkpoint (or reuse a finished model); its
    node and figures."""
    done = Path(out_dir) / TRAINED_FILE
    if done.exists():
        return this_node(), {**json.loads(done.read_text()), "reused": True}
    every = max(1, settings.checkpoint_steps // 4)
    report = _report_to(Path(work_dir) / PROGRESS_FILE, every)
    trained = LEARNERS[learner](examples, base_model, Path(out_dir), Path(work_dir), settings,
                                device, report)  # fmt: skip
    figures = {"examples": trained.examples, "steps": trained.steps,
               "seconds": round(trained.seconds, 1),
               "resumed_from_step": trained.resumed_from}  # fmt: skip
    atomic_write_text(done, json.dumps(figures))
    return this_node(), figures


def device_options() -> tuple[str, dict[str, Any]]:
    """CUDA with one GPU when the cluster has a GPU, else the CPU with two cores (or one on a
    one-core cluster)."""
    resources = ray.cluster_resources()
    if resources.get("GPU", 0) >= 1:
        return "cuda", {"num_gpus": 1, "num_cpus": 1}
    return "cpu", {"num_cpus": min(2.0, max(1.0, resources.get("CPU", 1.0)))}


def mine_examples(
    chunks: list[Chunk], matrix: np.ndarray, settings: BuildSettings
) -> list[TrainingExample]:
    """Training examples from the chunks, hard negatives from hybrid retrieval over `matrix`
    (the base model's vectors of the chunks)."""
    fresh = PublishedIndex(Path("."), {"version": "adapt",
                                       "embedding_model": settings.embedding.model_name,
                                       "prepend_titles": settings.chunking.prepend_titles},
                           build_faiss_index(matrix, "flat", 0), chunks)  # fmt: skip
    retriever = HybridRetriever(fresh, RetrievalSettings())
    embedder = SentenceEmbedder(settings.embedding.model_name)
    rank = hybrid_ranker(retriever, embedder.embed, depth=30)
    return corpus_examples(chunks, rank, settings.adapt, settings.chunking.prepend_titles)


def adapt(
    chunks: list[Chunk], matrix: np.ndarray, settings: BuildSettings, placement: Placement
) -> list[AdaptedModel]:
    """Train the configured learners on the chunks as Ray tasks; the trained models (in the
    index directory's checkpoint area, until `publish` copies them)."""
    start = time.perf_counter()
    examples = mine_examples(chunks, matrix, settings)
    if not examples:
        log.warning("no training examples in this corpus: nothing to adapt")
        return []
    key = examples_key(examples, settings)
    seconds = round(time.perf_counter() - start, 1)
    log.info("training examples ready",
             extra={"examples": len(examples), "key": key, "seconds": seconds})  # fmt: skip
    work = settings.index_dir / ".checkpoints" / "adapt" / key
    device, options = device_options()
    base = resolve_embedding_model(settings.embedding.model_name)
    shared = ray.put(examples)
    models = []
    for learner in settings.adapt.learners:
        out = work / learner
        trainer_dir = str(work / f"trainer-{learner}")
        ref = train_task.options(**options).remote(learner, shared, base, str(out), trainer_dir,
                                                   settings.adapt, device)  # fmt: skip
        node, figures = wait_printing_progress(ref, learner, Path(trainer_dir) / PROGRESS_FILE)
        placement.add(f"adapt-{learner}", node)
        record = {"device": device, "base_model": settings.embedding.model_name,
                  "settings": settings.adapt.model_dump(mode="json"), "examples_key": key,
                  **figures}  # fmt: skip
        log.info("adapted model trained", extra={"learner": learner, **figures})
        models.append(AdaptedModel(learner, out, record))
    return models
