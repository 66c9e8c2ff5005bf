"""The answer cache on a real redis-server: the same bounds and expiry as the in-memory store,
both tiers, rollbacks shared through it, and a server that is down is a miss, not an error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ragcore.cache.answer_cache import AnswerCache
from ragcore.cache.redis_cache import RedisCacheStore
from tests.helpers import RedisServer
from tests.ragcore.cache.test_cache import ANSWER, SCOPE, _unit
from utils.variant_settings import CacheSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    started = RedisServer(tmp_path / "redis").start()
    try:
        yield started
    finally:
        started.stop()


def test_entries_are_bounded_trimmed_and_expire(server: RedisServer) -> None:
    settings = CacheSettings(ttl_s=0.5, max_entries=2, max_semantic_per_scope=2)
    store = RedisCacheStore(server.url, settings)

    async def run() -> tuple[bytes | None, bytes | None, list[bytes], float, list[bytes]]:
        for i in range(3):
            await store.put(f"k{i}", b"v", "scope", f"e{i}".encode())
        stored_at = time.monotonic()
        kept = await store.get("k0"), await store.get("k2"), await store.candidates("scope")
        while await store.get("k2") is not None:  # the condition: the entry has expired
            assert time.monotonic() - stored_at < 10, "the entry never expired"
            await asyncio.sleep(0.02)
        return (*kept, time.monotonic() - stored_at, await store.candidates("scope"))

    oldest, newest, entries, lived, after = asyncio.run(run())
    assert oldest is None and newest == b"v"  # the oldest went first
    assert entries == [b"e2", b"e1"]
    assert lived >= 0.45 and after == []  # it lived its TTL, its scope's records with it


def test_both_tiers_and_rollbacks_work_across_clients(server: RedisServer) -> None:
    settings = CacheSettings()
    writer = AnswerCache(RedisCacheStore(server.url, settings), settings)
    reader = AnswerCache(RedisCacheStore(server.url, settings), settings)  # another replica
    vector = _unit(1)

    async def run() -> list[object]:
        await writer.put(SCOPE, "How do I enable autoscaling?", vector, ANSWER)
        exact = await reader.exact(SCOPE, "how do i enable autoscaling")
        close = await reader.semantic(SCOPE, "How can I enable autoscaling?", vector)
        opposite = await reader.semantic(SCOPE, "How do I disable autoscaling?", vector)
        other = await reader.exact(replace(SCOPE, tenant="globex"), "How do I enable autoscaling?")
        await writer.store.set_rollback("beta@1", "error_rate")
        shared = await reader.store.rollbacks()
        await reader.store.clear_rollback("beta@1")
        return [exact, close, opposite, other, shared, await writer.store.rollbacks()]

    exact, close, opposite, other, shared, cleared = asyncio.run(run())
    assert exact is not None and exact.tier == "exact" and exact.answer.text == ANSWER.text
    assert close is not None and close.tier == "semantic"
    assert opposite is None and other is None  # a near miss; another tenant
    assert shared == {"beta@1": "error_rate"} and cleared == {}


def test_a_server_that_is_down_is_a_miss(server: RedisServer) -> None:
    settings = CacheSettings(store_timeout_s=0.2)
    cache = AnswerCache(RedisCacheStore(server.url, settings), settings)
    server.stop()

    async def run() -> list[object]:
        await cache.put(SCOPE, "How do I enable autoscaling?", np.ones(4), ANSWER)
        return [
            await cache.exact(SCOPE, "How do I enable autoscaling?"),
            await cache.semantic(SCOPE, "How do I enable autoscaling?", _unit(1)),
        ]

    assert asyncio.run(run()) == [None, None]


def test_replicas_publish_their_live_traffic_and_dead_ones_are_forgotten(
    server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ragcore.cache.redis_cache as redis_cache

    store = RedisCacheStore(server.url, CacheSettings())

    async def run() -> tuple[dict[str, bytes], dict[str, bytes]]:
        await store.beat("a", b"1")
        await store.beat("b", b"2")
        await store.beat("a", b"3")
        both = await store.beats()
        monkeypatch.setattr(redis_cache, "BEAT_TTL_S", -1.0)  # everyone is now long silent
        return both, await store.beats()

    both, after = asyncio.run(run())
    assert both == {"a": b"3", "b": b"2"} and after == {}
