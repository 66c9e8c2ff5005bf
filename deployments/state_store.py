"""The shared store of the answer cache and the canary rollbacks: the embedded default (one
named Ray actor that every Ingress replica on every node calls) or Redis, whichever
auth.store names: the cache lives where the rate limits live."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ragcore.cache.redis_cache import RedisCacheStore
from ragcore.cache.store import CacheStore, MemoryCache
from utils.settings import ServiceSettings

NAMESPACE = "rag"


class ActorCacheStore:
    """The `CacheStore` protocol over the actor's handle (timeouts are the cache's)."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self.actor.get.remote(key)
        return value

    async def put(self, key: str, value: bytes, scope: str, entry: bytes) -> None:
        await self.actor.put.remote(key, value, scope, entry)

    async def candidates(self, scope: str) -> list[bytes]:
        entries: list[bytes] = await self.actor.candidates.remote(scope)
        return entries

    async def rollbacks(self) -> dict[str, str]:
        found: dict[str, str] = await self.actor.rollbacks.remote()
        return found

    async def set_rollback(self, label: str, reason: str) -> None:
        await self.actor.set_rollback.remote(label, reason)

    async def clear_rollback(self, label: str) -> None:
        await self.actor.clear_rollback.remote(label)

    async def beat(self, member: str, value: bytes) -> None:
        await self.actor.beat.remote(member, value)

    async def beats(self) -> dict[str, bytes]:
        found: dict[str, bytes] = await self.actor.beats.remote()
        return found


def actor_name(state_dir: Path) -> str:
    """One cache per state directory, as for the tenant store."""
    return "answer-cache-" + hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]


def build_cache_store(config: ServiceSettings) -> CacheStore:
    """The store auth.store names. The embedded actor is detached (it outlives the replica
    that made it) and restarted empty if it dies: a cache may lose entries, never serve wrong
    ones."""
    if config.auth.store == "redis":
        return RedisCacheStore(config.auth.redis_url, config.cache)
    import ray

    # The actor is the in-process MemoryCache itself: its calls run one at a time.
    cls = ray.remote(MemoryCache)
    actor = cls.options(
        name=actor_name(config.auth.state_dir), namespace=NAMESPACE, get_if_exists=True,
        lifetime="detached", num_cpus=0, max_restarts=-1,
        resources={"node:__internal_head__": 0.001},
    ).remote(config.cache)  # fmt: skip
    return ActorCacheStore(actor)
