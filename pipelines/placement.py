"""Where the build's work ran: units of work per stage and Ray node, for the build summary.
On a cluster it shows that crawling, reading and embedding spread over the nodes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import ray

# Spread the build's tasks and actors over the nodes: Ray's default packs them onto the
# driver's node until it is busy, which leaves a cluster's other nodes idle for small jobs.
SPREAD: Final = "SPREAD"


def this_node() -> str:
    """The id of the Ray node this task or actor runs on."""
    return str(ray.get_runtime_context().get_node_id())


def alive_cpu_nodes() -> list[str]:
    """The ids of the alive nodes that can host an actor (they have a CPU), the head first."""
    nodes = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) >= 1]
    nodes.sort(key=lambda n: "node:__internal_head__" not in n["Resources"])
    return [str(n["NodeID"]) for n in nodes]


@dataclass
class Placement:
    """Units of work (tasks, batches) per stage and node id."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, stage: str, node: str, units: int = 1) -> None:
        """Count `units` of `stage` on `node`."""
        self.counts.setdefault(stage, Counter())[node] += units

    def merge(self, other: Placement) -> None:
        """Add another placement's counts to this one."""
        for stage, nodes in other.counts.items():
            for node, units in nodes.items():
                self.add(stage, node, units)

    def line(self) -> str:
        """One summary line: per stage, how many nodes and the units on each (short ids)."""
        parts = [f"{stage} on {len(nodes)} node(s) "
                 + ", ".join(f"{node[:12]}: {units}" for node, units in nodes.most_common())
                 for stage, nodes in self.counts.items()]  # fmt: skip
        return "nodes: " + ("; ".join(parts) or "none")

    def as_dict(self) -> dict[str, dict[str, int]]:
        """Stage -> node id -> units."""
        return {stage: dict(nodes) for stage, nodes in self.counts.items()}
