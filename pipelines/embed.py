"""Embed chunks through a pool of Ray actors, each loading the model once, with checkpoints."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray
from ray.exceptions import NodeDiedError, ObjectLostError, RayActorError, WorkerCrashedError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tqdm import tqdm

from pipelines.checkpoint import CheckpointStore, batch_key
from pipelines.placement import SPREAD, Placement, alive_cpu_nodes, this_node
from ragcore.documents import Chunk
from ragcore.embedding import SentenceEmbedder
from utils.logs import get_logger
from utils.settings import EmbeddingSettings

ACTOR_START_TIMEOUT_S = 600.0
BATCH_TIMEOUT_S = 900.0
MAX_LOST_ACTORS = 4
# How a lost node shows: its actor died, or a batch it had finished was still in that node's
# object store when the node went (ObjectLostError), or its worker process crashed.
LOST_WITH_NODE = (RayActorError, ObjectLostError, NodeDiedError, WorkerCrashedError)
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


Batch = tuple[str, list[str], list[str]]  # (checkpoint key, chunk ids, texts)
Embedded = tuple[str, list[str], np.ndarray, str]  # (key, ids, vectors, node id)


class EmbeddingPool:
    """The embedding actors, two calls in flight each (hides the gaps). An actor whose node is
    lost is replaced on another node, up to MAX_LOST_ACTORS times."""

    def __init__(self, settings: EmbeddingSettings, threads: int) -> None:
        self.settings = settings
        self.threads = threads
        self.actors: list[tuple[Any, str]] = []  # the live ones, with their node ids
        self.idle: list[Any] = []
        self.lost_nodes: set[str] = set()
        self.losses = 0

    def start(self, count: int, strategy: Any = None) -> int:
        """Start `count` more actors (by default spread, away from nodes that lost one), wait
        until they loaded the model; the vector size."""
        options = {"num_cpus": 1, "scheduling_strategy": strategy or self._strategy()}
        new = [EmbeddingActor.options(**options).remote(  # type: ignore[attr-defined]
                   self.settings.model_name, self.settings.device, self.threads)
               for _ in range(count)]  # fmt: skip
        ready = ray.get([a.ready.remote() for a in new], timeout=ACTOR_START_TIMEOUT_S)
        self.actors += [(a, node) for a, (_, node) in zip(new, ready, strict=True)]
        self.idle += [a for a in new for _ in range(2)]
        return int(ready[0][0])

    def _strategy(self) -> Any:
        """SPREAD; after a loss, a node that lost none (the cluster may not know yet that a
        lost node is dead, and would place the new actor there)."""
        alive = [n for n in alive_cpu_nodes() if n not in self.lost_nodes]
        if not self.lost_nodes or not alive:
            return SPREAD
        return NodeAffinitySchedulingStrategy(alive[self.losses % len(alive)], soft=True)

    def replace(self, actor: Any, error: BaseException) -> None:
        """Retire a failed actor (once, whatever its calls in flight) and start another."""
        lost = [(a, node) for a, node in self.actors if a is actor]
        if not lost:
            return  # already replaced, for another of its calls
        self.actors = [(a, node) for a, node in self.actors if a is not actor]
        self.lost_nodes.update(node for _, node in lost)
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
            except LOST_WITH_NODE as exc:  # the replacement was lost too
                error = exc

    def stop(self) -> None:
        """Kill every live actor."""
        for actor, _ in self.actors:
            ray.kill(actor)


def embed_batches(pool: EmbeddingPool, batches: list[Batch]) -> Iterator[Embedded]:
    """Each batch's vectors as the pool's actors finish them, in any order; a batch whose
    actor was lost runs again on its replacement."""
    queue = list(reversed(batches))
    pending: dict[ray.ObjectRef, tuple[Any, Batch]] = {}
    while queue or pending:
        while queue and pool.idle:
            actor, batch = pool.idle.pop(), queue.pop()
            pending[actor.embed.remote(*batch)] = (actor, batch)
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=BATCH_TIMEOUT_S)
        if not ready:
            raise TimeoutError(f"no embedding batch finished within {BATCH_TIMEOUT_S:.0f}s")
        for ref in ready:
            actor, batch = pending.pop(ref)
            try:
                embedded: Embedded = ray.get(ref, timeout=60.0)
            except LOST_WITH_NODE as exc:  # its node was lost: the batch runs elsewhere
                queue.append(batch)
                pool.replace(actor, exc)
                continue
            pool.idle.append(actor)
            yield embedded


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
    size = settings.batch_size
    batches = [todo[i : i + size] for i in range(0, len(todo), size)]
    dim = next(iter(vectors.values())).shape[0] if vectors else 0
    placement = Placement()
    if batches:
        actors_n, threads = _plan_actors(settings)
        pool = EmbeddingPool(settings, threads)
        dim = pool.start(min(actors_n, len(batches)))
        bar = tqdm(total=len(todo), desc="embed", unit="chunk", dynamic_ncols=True)
        work = []
        for batch in batches:
            ids = [c.id for c in batch]
            work.append((batch_key(store.model, ids), ids,
                         [c.embed_text(prepend_titles) for c in batch]))  # fmt: skip
        for key, ids, batch_vectors, node in embed_batches(pool, work):
            placement.add("embed", node)
            store.write(key, ids, batch_vectors, run_id)
            vectors.update(zip(ids, batch_vectors, strict=True))
            bar.update(len(ids))
        bar.close()
        pool.stop()
    stats = EmbedStats(len(chunks), len(todo), reused, len(batches), time.perf_counter() - start,
                       dim, placement)  # fmt: skip
    return vectors, stats
