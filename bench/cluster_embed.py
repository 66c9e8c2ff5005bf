"""Embedding throughput on one node and on every node of a running Ray cluster, for
`bench/build_throughput.py --ray-address`: the build's own EmbeddingPool and batch loop, its
actors pinned with node affinity, over the same chunk texts (a fixed sample of an existing
index's chunks)."""

from __future__ import annotations

import time
from typing import Any

from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from pipelines.embed import EmbeddingPool, embed_batches
from pipelines.placement import Placement, alive_cpu_nodes
from utils.settings import EmbeddingSettings


def embed_on(nodes: list[str], texts: list[str], settings: EmbeddingSettings,
             actors_per_node: int, threads: int) -> dict[str, Any]:  # fmt: skip
    """Chunks/s of `actors_per_node` actors on each of `nodes` (model load excluded)."""
    pool = EmbeddingPool(settings, threads)
    for node in nodes:
        pool.start(actors_per_node, NodeAffinitySchedulingStrategy(node, soft=False))
    size = settings.batch_size
    parts = [texts[j : j + size] for j in range(0, len(texts), size)]
    batches = [("bench", [str(i) for i in range(len(part))], part) for part in parts]
    placement = Placement()
    start = time.perf_counter()
    for _, ids, _, node in embed_batches(pool, batches):
        placement.add("embed", node[:12], len(ids))
    seconds = time.perf_counter() - start
    pool.stop()
    done = len(texts)
    actors = len(nodes) * actors_per_node
    return {"nodes": len(nodes), "actors": actors, "chunks": done, "seconds": seconds,
            "chunks_per_s": done / seconds, "per_actor_chunks_per_s": done / seconds / actors,
            "chunks_by_node": placement.as_dict()["embed"]}  # fmt: skip


def compare(texts: list[str], settings: EmbeddingSettings, actors_per_node: int = 1,
            threads: int = 1) -> dict[str, Any]:  # fmt: skip
    """The same texts on the head alone, then on every node."""
    nodes = alive_cpu_nodes()
    if len(nodes) < 2:
        raise SystemExit(f"the cluster has {len(nodes)} node(s) with CPUs: start a second")
    one = embed_on(nodes[:1], texts, settings, actors_per_node, threads)
    every = embed_on(nodes, texts, settings, actors_per_node, threads)
    return {
        "one_node": one,
        "all_nodes": every,
        "speedup": every["chunks_per_s"] / one["chunks_per_s"],
    }
