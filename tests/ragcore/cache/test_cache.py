"""Cache keys, the near-miss guard, the in-memory store's bounds and the two tiers."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np
import pytest

from ragcore.cache.answer_cache import AnswerCache, decode_answer, encode_answer
from ragcore.cache.keys import CacheScope, normalize_question
from ragcore.cache.near_miss import near_miss, signature
from ragcore.cache.store import LocalCacheStore, MemoryCache
from ragcore.protocols import Answer, Hit, Usage, Validation
from utils.variant_settings import CacheSettings

SCOPE = CacheScope("acme", "docs", "v1", "main@1", "smollm2", "answer-v3", "params", "{}", 5)
ANSWER = Answer("Use num_replicas [1].", [Hit("text", "u#a", 0.5, "P > S", 0.8)], Usage(90, 10),
                12.0, citations=(1,), validation=Validation(True, groundedness=1.0),
                prompt_version="answer-v3", variant="main@1", engine="default")  # fmt: skip


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=16).astype(np.float32)
    return v / np.linalg.norm(v)


def test_questions_normalise_and_every_scope_field_changes_the_key() -> None:
    assert normalize_question("  How do I  scale?? ") == normalize_question("how do i scale")
    key = SCOPE.key("q")
    for field, value in [("tenant", "other"), ("collection", "hr"), ("index_version", "v2"),
                         ("variant", "main@2"), ("model", "m2"), ("prompt_version", "v2"),
                         ("decoding", "p2"), ("retrieval", '{"k":1}'), ("top_k", 3)]:  # fmt: skip
        assert replace(SCOPE, **{field: value}).key("q") != key, field


@pytest.mark.parametrize(("a", "b", "why"), [
    ("How do I enable autoscaling?", "How do I disable autoscaling?", "opposites"),
    ("How do I scale up a deployment?", "How do I scale down a deployment?", "opposites"),
    ("How do I use GPUs with Ray Data?", "How do I use GPUs with Ray Serve?", "identifiers"),
    ("Does Ray support Python 3.9?", "Does Ray support Python 3.10?", "identifiers"),
    ("What does ray.init() do?", "What does ray.shutdown() do?", "identifiers"),
    ("Why is my actor restarted?", "Why is my actor not restarted?", "negation"),
])  # fmt: skip
def test_the_guard_refuses_near_misses(a: str, b: str, why: str) -> None:
    assert near_miss(signature(a), signature(b), 1.0) == why


@pytest.mark.parametrize(("a", "b"), [
    ("How do I enable autoscaling in Ray Serve?", "how can I enable autoscaling in ray serve"),
    ("How do I set up a Ray cluster on Kubernetes?", "How do I set a Ray cluster on Kubernetes up"),
    ("What is a placement group?", "What's a placement group?"),
])  # fmt: skip
def test_the_guard_lets_paraphrases_through(a: str, b: str) -> None:
    assert near_miss(signature(a), signature(b), 1.0) is None


def test_answers_round_trip_through_the_store_format() -> None:
    assert decode_answer(encode_answer(ANSWER)) == replace(ANSWER, latency_ms=0.0)


def test_the_memory_store_expires_and_bounds_entries() -> None:
    now = [0.0]
    cache = MemoryCache(CacheSettings(ttl_s=10, max_entries=2, max_semantic_per_scope=2),
                        clock=lambda: now[0])  # fmt: skip
    for i in range(3):
        cache.put(f"k{i}", b"v", "scope", f"e{i}".encode())
    assert cache.get("k0") is None and cache.get("k2") == b"v"  # the oldest went first
    assert cache.candidates("scope") == [b"e2", b"e1"]
    now[0] = 11
    assert cache.get("k2") is None and cache.candidates("scope") == []


def test_exact_then_semantic_hits_and_a_refused_near_miss() -> None:
    cache = AnswerCache(LocalCacheStore(MemoryCache(CacheSettings())), CacheSettings())
    vector = _unit(1)

    async def run() -> list[object]:
        await cache.put(SCOPE, "How do I enable autoscaling?", vector, ANSWER)
        exact = await cache.exact(SCOPE, "how do i enable autoscaling")
        close = await cache.semantic(SCOPE, "How can I enable autoscaling?", vector * 0.999)
        flipped = await cache.semantic(SCOPE, "How do I disable autoscaling?", vector)
        far = await cache.semantic(SCOPE, "How can I enable autoscaling?", _unit(2))
        other = await cache.exact(replace(SCOPE, tenant="evil"), "How do I enable autoscaling?")
        return [exact, close, flipped, far, other]

    exact, close, flipped, far, other = asyncio.run(run())
    assert exact is not None and exact.tier == "exact" and exact.answer.text == ANSWER.text
    assert close is not None and close.tier == "semantic"
    assert flipped is None and far is None and other is None


def test_refusals_and_degraded_answers_are_not_stored() -> None:
    store = MemoryCache(CacheSettings())
    cache = AnswerCache(LocalCacheStore(store), CacheSettings())
    asyncio.run(cache.put(SCOPE, "q", None, replace(ANSWER, mode="refused")))
    asyncio.run(cache.put(SCOPE, "q", None, replace(ANSWER, status="degraded")))
    assert asyncio.run(cache.exact(SCOPE, "q")) is None
