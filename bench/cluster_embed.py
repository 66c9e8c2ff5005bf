"""Embedding throughput on one node and on every node of a running Ray cluster, for
`bench/build_throughput.py --ray-address`: the build's own EmbeddingActor, pinned with node
affinity, over the same chunk texts (a fixed sample of an existing index's chunks)."""

from __future__ import annotations

import time
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from pipelines.embed import EmbeddingActor
from utils.settings import EmbeddingSettings


def cpu_nodes() -> list[dict[str, Any]]:
    """The alive nodes that have CPUs, the head first."""
    nodes = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) >= 1]
    return sorted(nodes, key=lambda n: "node:__internal_head__" not in n["Resources"])


def embed_on(nodes: list[str], texts: list[str], settings: EmbeddingSettings,
             actors_per_node: int, threads: int) -> dict[str, Any]:  # fmt: skip
    """Chunks/s of `actors_per_node` actors on each of `nodes` (model load excluded), two
    batches in flight per actor, as in the build."""
    actors = [EmbeddingActor.options(  # type: ignore[attr-defined]
                  num_cpus=1,
                  scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
              ).remote(settings.model_name, settings.device, threads)
              for node in nodes for _ in range(actors_per_node)]  # fmt: skip
    ray.get([a.ready.remote() for a in actors], timeout=600)
    size = settings.batch_size
    batches = [texts[i : i + size] for i in range(0, len(texts), size)]
    start = time.perf_counter()
    pending: dict[Any, Any] = {}
    idle = [a for a in actors for _ in range(2)]
    done = 0
    per_node: dict[str, int] = {}
    while batches or pending:
        while batches and idle:
            actor, batch = idle.pop(), batches.pop()
            pending[actor.embed.remote("bench", [str(i) for i in range(len(batch))], batch)] = actor
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=900)
        for ref in ready:
            idle.append(pending.pop(ref))
            _, ids, _, node = ray.get(ref)
            done += len(ids)
            per_node[node[:12]] = per_node.get(node[:12], 0) + len(ids)
    seconds = time.perf_counter() - start
    for actor in actors:
        ray.kill(actor)
    return {"nodes": len(nodes), "actors": len(actors), "chunks": done, "seconds": seconds,
            "chunks_per_s": done / seconds, "per_actor_chunks_per_s": done / seconds / len(actors),
            "chunks_by_node": per_node}  # fmt: skip


def compare(texts: list[str], settings: EmbeddingSettings, actors_per_node: int = 1,
            threads: int = 1) -> dict[str, Any]:  # fmt: skip
    """The same texts on the head alone, then on every node."""
    nodes = [n["NodeID"] for n in cpu_nodes()]
    if len(nodes) < 2:
        raise SystemExit(f"the cluster has {len(nodes)} node(s) with CPUs: start a second")
    one = embed_on(nodes[:1], texts, settings, actors_per_node, threads)
    every = embed_on(nodes, texts, settings, actors_per_node, threads)
    return {
        "one_node": one,
        "all_nodes": every,
        "speedup": every["chunks_per_s"] / one["chunks_per_s"],
    }
