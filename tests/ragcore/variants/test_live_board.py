"""The live board: replicas publish their live traffic to the shared store and read the app's."""

from __future__ import annotations

import asyncio
from typing import Any

from ragcore.cache.store import LocalCacheStore, MemoryCache
from ragcore.variants.live_board import STALE_S, LiveBoard
from utils.variant_settings import CacheSettings, VariantsSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _boards(clock: Clock, shadows: bool = True) -> tuple[LiveBoard, LiveBoard, MemoryCache]:
    items: list[dict[str, Any]] = [{"name": "main"}]
    if shadows:
        items.append({"name": "next", "role": "shadow"})
    settings = VariantsSettings(items=items, shadow_idle_s=0.5, shadow_poll_s=0.001)
    memory = MemoryCache(CacheSettings())
    store = LocalCacheStore(memory)
    return (LiveBoard(store, settings, "a", clock), LiveBoard(store, settings, "b", clock),
            memory)  # fmt: skip


async def _published(memory: MemoryCache, member: str, in_flight: int) -> None:
    while f'"in_flight": {in_flight},'.encode() not in memory.beats().get(member, b""):
        await asyncio.sleep(0.001)


def test_a_replica_sees_the_others_live_traffic_and_idle_time() -> None:
    clock = Clock()
    here, there, memory = _boards(clock)

    async def run() -> list[bool]:
        seen = [await here.busy()]  # nobody published: idle
        there.started()
        await _published(memory, "b", 1)
        seen.append(await here.busy())  # a live request on the other replica
        there.finished()
        await _published(memory, "b", 0)
        seen.append(await here.busy())  # it just ended: not idle long enough
        clock.now += 0.6
        seen.append(await here.busy())
        there.started()
        there.started()
        await _published(memory, "b", 2)
        seen += [await here.busy(limit=2), await here.busy(limit=1)]
        here.started()  # with ours, three in the app: over a limit of 2
        seen.append(await here.busy(limit=2))
        here.finished()
        clock.now += STALE_S + 1  # a replica not heard from is gone (it died busy)
        seen.append(await here.busy(limit=1))
        return seen

    assert asyncio.run(run()) == [False, True, True, False, False, True, True, False]


def test_own_traffic_counts_without_the_store_and_nothing_is_published_without_shadows() -> None:
    clock = Clock()
    here, _, memory = _boards(clock, shadows=False)

    async def run() -> list[bool]:
        here.started()
        busy = await here.busy()
        here.finished()
        clock.now += 0.6
        return [busy, await here.busy()]

    assert asyncio.run(run()) == [True, False]
    assert memory.beats() == {}


def test_an_unreadable_board_counts_as_busy() -> None:
    class Broken:
        async def beat(self, member: str, value: bytes) -> None:
            raise ConnectionError("store down")

        async def beats(self) -> dict[str, bytes]:
            raise ConnectionError("store down")

    settings = VariantsSettings(items=[{"name": "main"}, {"name": "s", "role": "shadow"}])
    board = LiveBoard(Broken(), settings, "a", Clock())
    assert asyncio.run(board.busy()) is True
