"""Embed chunks through a pool of Ray actors, each loading the model once, with checkpoints."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import ray
from tqdm import tqdm

from pipelines.checkpoint import CheckpointStore, batch_key
from ragcore.documents import Chunk
from ragcore.embedding import SentenceEmbedder
from utils.settings import EmbeddingSettings

ACTOR_START_TIMEOUT_S = 600.0
BATCH_TIMEOUT_S = 900.0


@ray.remote
class EmbeddingActor:
    """Holds one model for its lifetime; batches stream through it."""

    def __init__(self, model_name: str, device: str, num_threads: int) -> None:
        self.embedder = SentenceEmbedder(model_name, device, num_threads)

    def ready(self) -> int:
        return self.embedder.dim

    def embed(
        self, key: str, ids: list[str], texts: list[str]
    ) -> tuple[str, list[str], np.ndarray]:
        return key, ids, self.embedder.embed(texts)


@dataclass
class EmbedStats:
    """What the embedding stage did, for the summary and for tests."""

    total_chunks: int
    embedded_chunks: int
    reused_chunks: int
    batches_written: int
    seconds: float
    dim: int


def _plan_actors(settings: EmbeddingSettings) -> tuple[int, int]:
    """(actors, torch threads each). One actor per 2 cores keeps torch's intra-op threads busy
    without oversubscribing; on a 2-core machine that is one actor with 2 threads."""
    physical = os.cpu_count() or 2
    actors = settings.num_actors or max(1, physical // 2)
    return actors, max(1, physical // actors)


def embed_chunks(
    chunks: list[Chunk],
    settings: EmbeddingSettings,
    prepend_titles: bool,
    store: CheckpointStore,
    run_id: str,
) -> tuple[dict[str, np.ndarray], EmbedStats]:
    """Vectors for every chunk, embedding only those no finished checkpoint already holds."""
    start = time.perf_counter()
    wanted = {c.id for c in chunks}
    vectors = store.load_vectors(wanted)
    # Length-sorted batches pad least: each forward pass costs as much as its longest text.
    todo = sorted((c for c in chunks if c.id not in vectors), key=lambda c: len(c.text))
    reused = len(vectors)
    batches = [todo[i : i + settings.batch_size] for i in range(0, len(todo), settings.batch_size)]
    dim = next(iter(vectors.values())).shape[0] if vectors else 0
    if batches:
        actors_n, threads = _plan_actors(settings)
        actors_n = min(actors_n, len(batches))
        actors = [
            EmbeddingActor.options(num_cpus=1).remote(  # type: ignore[attr-defined]
                settings.model_name, settings.device, threads
            )
            for _ in range(actors_n)
        ]
        dims = ray.get([a.ready.remote() for a in actors], timeout=ACTOR_START_TIMEOUT_S)
        dim = dims[0]
        bar = tqdm(total=len(todo), desc="embed", unit="chunk", dynamic_ncols=True)
        pending: dict[ray.ObjectRef, EmbeddingActor] = {}
        queue = list(reversed(batches))
        idle = [a for a in actors for _ in range(2)]  # two in flight per actor hides the gaps
        while queue or pending:
            while queue and idle:
                actor = idle.pop()
                batch = queue.pop()
                ids = [c.id for c in batch]
                texts = [c.embed_text(prepend_titles) for c in batch]
                pending[actor.embed.remote(batch_key(store.model, ids), ids, texts)] = actor
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=BATCH_TIMEOUT_S)
            if not ready:
                raise TimeoutError(f"no embedding batch finished within {BATCH_TIMEOUT_S:.0f}s")
            for ref in ready:
                idle.append(pending.pop(ref))
                key, ids, batch_vectors = ray.get(ref, timeout=60.0)
                store.write(key, ids, batch_vectors, run_id)
                vectors.update(zip(ids, batch_vectors, strict=True))
                bar.update(len(ids))
        bar.close()
        for actor in actors:
            ray.kill(actor)
    stats = EmbedStats(
        len(chunks), len(todo), reused, len(batches), time.perf_counter() - start, dim
    )
    return vectors, stats
