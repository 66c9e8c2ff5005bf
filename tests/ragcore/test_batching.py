"""MicroBatcher: no wait when idle, batches under load, cancelled callers dropped."""

from __future__ import annotations

import asyncio

import pytest

from ragcore.batching import MicroBatcher


def test_a_lone_call_runs_at_once_and_concurrent_calls_share_batches() -> None:
    sizes: list[int] = []

    async def double(items: list[int]) -> list[int]:
        sizes.append(len(items))
        await asyncio.sleep(0.01)
        return [2 * i for i in items]

    async def scenario() -> list[int]:
        batcher: MicroBatcher[int, int] = MicroBatcher(double, max_batch_size=8)
        assert await batcher.submit(1) == 2
        return list(await asyncio.gather(*(batcher.submit(i) for i in range(20))))

    assert asyncio.run(scenario()) == [2 * i for i in range(20)]
    assert sizes[0] == 1 and max(sizes) == 8 and sum(sizes) == 21


def test_a_failing_batch_fails_its_callers_only() -> None:
    async def explode(items: list[str]) -> list[str]:
        if "bad" in items:
            raise ValueError("bad item")
        return items

    async def scenario() -> str:
        batcher: MicroBatcher[str, str] = MicroBatcher(explode, max_batch_size=1)
        with pytest.raises(ValueError, match="bad item"):
            await batcher.submit("bad")
        return await batcher.submit("good")

    assert asyncio.run(scenario()) == "good"


def test_a_cancelled_caller_is_dropped_from_its_batch() -> None:
    seen: list[list[str]] = []
    gate = asyncio.Event

    async def scenario() -> None:
        release = gate()

        async def run(items: list[str]) -> list[str]:
            seen.append(items)
            await release.wait()
            return items

        batcher: MicroBatcher[str, str] = MicroBatcher(run, max_batch_size=4)
        first = asyncio.create_task(batcher.submit("first"))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(batcher.submit("gone"))
        kept = asyncio.create_task(batcher.submit("kept"))
        await asyncio.sleep(0)
        waiting.cancel()
        release.set()
        assert await first == "first" and await kept == "kept"

    asyncio.run(scenario())
    assert seen == [["first"], ["kept"]]
