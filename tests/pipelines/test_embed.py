"""The embedding pool's fault path: a batch whose result is lost with its node runs again."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import ray
from ray.exceptions import ObjectLostError

from pipelines import embed

pytestmark = pytest.mark.integration


def _actor(name: str) -> Any:
    """Stands in for an EmbeddingActor: each call's result is a real object in Ray's store."""

    def remote(key: str, ids: list[str], texts: list[str]) -> Any:
        return ray.put((key, ids, np.zeros((len(ids), 2)), name))

    return SimpleNamespace(name=name, embed=SimpleNamespace(remote=remote))


class _Pool:
    """One actor with two calls in flight; a replacement is another actor."""

    def __init__(self) -> None:
        self.first = _actor("lost")
        self.idle = [self.first, self.first]
        self.replaced: list[tuple[str, BaseException]] = []

    def replace(self, actor: Any, error: BaseException) -> None:
        self.replaced.append((actor.name, error))
        self.idle = [a for a in self.idle if a is not actor] + [_actor("new")] * 2


def test_a_batch_lost_with_its_nodes_object_store_runs_on_a_replacement(
    ray_session: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_get = ray.get
    lost: list[str] = []

    def get(ref: Any, timeout: float | None = None) -> Any:
        value = real_get(ref, timeout=timeout)
        if value[3] == "lost" and not lost:  # the first finished batch died with its node
            lost.append(value[0])
            raise ObjectLostError(ref.hex(), "", "")
        return value

    monkeypatch.setattr(embed.ray, "get", get)
    pool = _Pool()
    batches = [(f"k{i}", [f"c{i}"], [f"text {i}"]) for i in range(4)]
    done = list(embed.embed_batches(pool, batches))  # type: ignore[arg-type]
    assert sorted(key for key, *_ in done) == ["k0", "k1", "k2", "k3"]  # nothing dropped
    assert [name for name, _ in pool.replaced] == ["lost"]
    assert isinstance(pool.replaced[0][1], ObjectLostError)
    (again,) = [node for key, _, _, node in done if key == lost[0]]
    assert again == "new"
