"""Embed chunks through a pool of Ray actors, each loading the model once, with checkpoints."""

from __future__ import annotations

import os
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray
from ray.exceptions import RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tqdm import tqdm

from pipelines.checkpoint import CheckpointStore, batch_key
from pipelines.placement import SPREAD, Placement, this_node
from ragcore.documents import Chunk
from ragcore.embedding import SentenceEmbedder
from utils.logs import get_logger
from utils.settings import EmbeddingSettings

ACTOR_START_TIMEOUT_S = 600.0
BATCH_TIMEOUT_S = 900.0
MAX_LOST_ACTORS = 4
log = get_logger("embed")


@ray.remote
class EmbeddingActor:
    """Holds one model for its lifetime; batches stream through it."""

    def __init__(self, model_name: str, device: str, num_threads: int) -> None:
        self.embedder = SentenceEmbedder(model_name, device, num_threads)

    def ready(self) -> tuple[int, str]:
        return self.embedder.dim, this_node()

    def embed(
        self, key: str, ids: list[str], texts: list[str]
    ) -> tuple[str, list[str], np.ndarray, str]:
        return key, ids, self.embedder.embed(texts), this_node()


@dataclass
class EmbedStats:
    """What the embedding stage did, for the summary and for tests."""

    total_chunks: int
    embedded_chunks: int
    reused_chunks: int
    batches_written: int
    seconds: float
    dim: int
    placement: Placement = field(default_factory=Placement)  # batches per node


def _plan_actors(settings: EmbeddingSettings) -> tuple[int, int]:
    """(actors, torch threads each). One actor per 2 cores keeps torch's intra-op threads busy
    without oversubscribing; on a 2-core machine that is one actor with 2 threads."""
    physical = os.cpu_count() or 2
    actors = settings.num_actors or max(1, physical // 2)
    return actors, max(1, physical // actors)


class _ActorPool:
    """The embedding actors, spread over the nodes, two calls in flight each (hides the gaps).
    An actor whose node is lost is replaced on another node, up to MAX_LOST_ACTORS times in
    one build."""

    def __init__(self, settings: EmbeddingSettings, threads: int) -> None:
        self.settings = settings
        self.threads = threads
        self.actors: list[tuple[Any, str]] = []  # (actor, node id)
        self.idle: list[Any] = []
        self.lost: list[Any] = []
        self.lost_nodes: set[str] = set()
        self.losses = 0

    def start(self, count: int) -> int:
        """Start `count` more actors (away from nodes that lost one), wait until they loaded
        the model; the vector size."""
        new = [EmbeddingActor.options(num_cpus=1, scheduling_strategy=self._strategy()).remote(  # type: ignore[attr-defined]
                   self.settings.model_name, self.settings.device, self.threads)
               for _ in range(count)]  # fmt: skip
        ready = ray.get([a.ready.remote() for a in new], timeout=ACTOR_START_TIMEOUT_S)
        self.actors += [(a, node) for a, (_, node) in zip(new, ready, strict=True)]
        self.idle += [a for a in new for _ in range(2)]
        return int(ready[0][0])

    def _strategy(self) -> Any:
        """SPREAD; after a loss, a node that lost none (the cluster may not know yet that a
        lost node is dead, and would place the new actor there)."""
        if not self.lost_nodes:
            return SPREAD
        alive = [
            n["NodeID"]
            for n in ray.nodes()
            if n["Alive"]
            and n["NodeID"] not in self.lost_nodes
            and n["Resources"].get("CPU", 0) >= 1
        ]
        if not alive:
            return SPREAD
        return NodeAffinitySchedulingStrategy(alive[self.losses % len(alive)], soft=True)

    def replace(self, actor: Any, error: Exception) -> None:
        """Retire a failed actor (once, whatever its calls in flight) and start another."""
        if any(a is actor for a in self.lost):
            return
        self.lost.append(actor)
        self.lost_nodes.update(node for a, node in self.actors if a is actor)
        self.idle = [a for a in self.idle if a is not actor]
        with suppress(Exception):
            ray.kill(actor)
        log.warning("embedding actor lost, its batches run on a new one",
                    extra={"error": repr(error)[:300]})  # fmt: skip
        while True:
            self.losses += 1
            if self.losses > MAX_LOST_ACTORS:
                raise RuntimeError(f"{self.losses} embedding actors lost: {error}") from error
            try:
                self.start(1)
                return
            except RayActorError as exc:  # the replacement was lost too
                error = exc

    def stop(self) -> None:
        """Kill every actor still alive."""
        for actor, _ in self.actors:
            if not any(a is actor for a in self.lost):
                ray.kill(actor)


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
    placement = Placement()
    if batches:
        actors_n, threads = _plan_actors(settings)
        pool = _ActorPool(settings, threads)
        dim = pool.start(min(actors_n, len(batches)))
        bar = tqdm(total=len(todo), desc="embed", unit="chunk", dynamic_ncols=True)
        pending: dict[ray.ObjectRef, tuple[Any, list[Chunk]]] = {}
        queue = list(reversed(batches))
        while queue or pending:
            while queue and pool.idle:
                actor, batch = pool.idle.pop(), queue.pop()
                ids = [c.id for c in batch]
                texts = [c.embed_text(prepend_titles) for c in batch]
                ref = actor.embed.remote(batch_key(store.model, ids), ids, texts)
                pending[ref] = (actor, batch)
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=BATCH_TIMEOUT_S)
            if not ready:
                raise TimeoutError(f"no embedding batch finished within {BATCH_TIMEOUT_S:.0f}s")
            for ref in ready:
                actor, batch = pending.pop(ref)
                try:
                    key, ids, batch_vectors, node = ray.get(ref, timeout=60.0)
                except RayActorError as exc:  # its node was lost: the batch runs elsewhere
                    queue.append(batch)
                    pool.replace(actor, exc)
                    continue
                pool.idle.append(actor)
                placement.add("embed", node)
                store.write(key, ids, batch_vectors, run_id)
                vectors.update(zip(ids, batch_vectors, strict=True))
                bar.update(len(ids))
        bar.close()
        pool.stop()
    stats = EmbedStats(len(chunks), len(todo), reused, len(batches), time.perf_counter() - start,
                       dim, placement)  # fmt: skip
    return vectors, stats
