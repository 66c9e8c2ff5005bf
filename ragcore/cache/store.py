"""Where cached answers live: a Protocol, and the in-memory store that the embedded actor
hosts (Redis is the other: ragcore/cache/redis_cache.py). Both bound the exact tier by
`max_entries` (oldest out first) and by `ttl_s`, and keep the newest `max_semantic_per_scope`
questions per scope for the semantic tier."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Protocol

from utils.variant_settings import CacheSettings

BEAT_TTL_S = 60.0  # a replica's published state is forgotten after this long without a beat


class CacheStore(Protocol):
    """What the answer cache needs from the shared store (also the canary rollbacks, which
    every replica must see)."""

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes, scope: str, entry: bytes) -> None:
        """Store `value` under `key` and `entry` (the question's semantic record) in `scope`."""
        ...

    async def candidates(self, scope: str) -> list[bytes]:
        """The semantic records of `scope`, newest first."""
        ...

    async def rollbacks(self) -> dict[str, str]: ...

    async def set_rollback(self, label: str, reason: str) -> None: ...

    async def clear_rollback(self, label: str) -> None: ...

    async def beat(self, member: str, value: bytes) -> None:
        """Publish a replica's state (`LiveBoard`)."""

    async def beats(self) -> dict[str, bytes]:
        """Every replica's last published state (members silent for BEAT_TTL_S are gone)."""


class MemoryCache:
    """The store's logic in one process (synchronous; the embedded actor serialises calls)."""

    def __init__(self, settings: CacheSettings, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.clock = clock
        self._values: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._scopes: dict[str, tuple[float, deque[bytes]]] = {}
        self._rollbacks: dict[str, str] = {}
        self._beats: dict[str, tuple[float, bytes]] = {}

    def get(self, key: str) -> bytes | None:
        found = self._values.get(key)
        if found is None:
            return None
        if found[0] <= self.clock():
            del self._values[key]
            return None
        return found[1]

    def put(self, key: str, value: bytes, scope: str, entry: bytes) -> None:
        expires = self.clock() + self.settings.ttl_s
        self._values[key] = (expires, value)
        self._values.move_to_end(key)
        while len(self._values) > self.settings.max_entries:
            self._values.popitem(last=False)
        if entry:
            entries = self._scopes.get(scope, (0.0, deque()))[1]
            entries.appendleft(entry)
            while len(entries) > self.settings.max_semantic_per_scope:
                entries.pop()
            self._scopes[scope] = (expires, entries)
        if len(self._scopes) > self.settings.max_entries:  # scopes of expired answers
            now = self.clock()
            self._scopes = {k: v for k, v in self._scopes.items() if v[0] > now}

    def candidates(self, scope: str) -> list[bytes]:
        found = self._scopes.get(scope)
        if found is None or found[0] <= self.clock():
            return []
        return list(found[1])

    def rollbacks(self) -> dict[str, str]:
        return dict(self._rollbacks)

    def set_rollback(self, label: str, reason: str) -> None:
        self._rollbacks.setdefault(label, reason)

    def clear_rollback(self, label: str) -> None:
        self._rollbacks.pop(label, None)

    def beat(self, member: str, value: bytes) -> None:
        self._beats[member] = (self.clock(), value)

    def beats(self) -> dict[str, bytes]:
        oldest = self.clock() - BEAT_TTL_S
        self._beats = {m: b for m, b in self._beats.items() if b[0] >= oldest}
        return {m: b[1] for m, b in self._beats.items()}


class LocalCacheStore:
    """The `CacheStore` protocol over a `MemoryCache` in this process (tests, one-process
    runs)."""

    def __init__(self, cache: MemoryCache) -> None:
        self.cache = cache

    async def get(self, key: str) -> bytes | None:
        return self.cache.get(key)

    async def put(self, key: str, value: bytes, scope: str, entry: bytes) -> None:
        self.cache.put(key, value, scope, entry)

    async def candidates(self, scope: str) -> list[bytes]:
        return self.cache.candidates(scope)

    async def rollbacks(self) -> dict[str, str]:
        return self.cache.rollbacks()

    async def set_rollback(self, label: str, reason: str) -> None:
        self.cache.set_rollback(label, reason)

    async def clear_rollback(self, label: str) -> None:
        self.cache.clear_rollback(label)

    async def beat(self, member: str, value: bytes) -> None:
        self.cache.beat(member, value)

    async def beats(self) -> dict[str, bytes]:
        return self.cache.beats()
