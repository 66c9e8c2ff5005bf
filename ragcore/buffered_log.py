"""Records of one replica, buffered in memory and written to a store in batches."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from utils.logs import get_logger

log = get_logger("buffered_log")
Item = TypeVar("Item")


class BufferedLog(Generic[Item]):
    """Buffers records and writes them every `flush_s` with `write`; a failed write keeps them
    for the next one, and at most `max_items` are held while the store is down (then the oldest
    go, and `on_error("dropped")` says so). The live path only appends to a list."""

    def __init__(
        self,
        write: Callable[[list[Item]], Awaitable[object]],
        flush_s: float,
        timeout_s: float,
        on_error: Callable[[str], None],
        what: str,
        max_items: int = 100_000,
    ) -> None:
        self.write = write
        self.flush_s = flush_s
        self.timeout_s = timeout_s
        self.on_error = on_error
        self.what = what
        self.max_items = max_items
        self._items: list[Item] = []

    def add(self, item: Item) -> None:
        """Buffer one record."""
        if len(self._items) >= self.max_items:
            self._items.pop(0)
            self.on_error("dropped")
        self._items.append(item)

    async def flush(self) -> None:
        """Write the buffered records; kept for the next try when the store is down."""
        if not self._items:
            return
        batch, self._items = self._items, []
        try:
            await asyncio.wait_for(self.write(batch), self.timeout_s)
        except Exception as exc:
            self.on_error("record")
            why = {"records": len(batch), "error": repr(exc)[:200]}
            log.warning(f"{self.what} not written yet; will retry", extra=why)
            self._items = batch + self._items

    async def run(self) -> None:
        """Flush every `flush_s` until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(self.flush_s)
                await self.flush()
        finally:
            await asyncio.shield(self.flush())
