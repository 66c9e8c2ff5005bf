"""Micro-batching for concurrent async callers, without a fixed wait."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class MicroBatcher(Generic[In, Out]):
    """Runs concurrent `submit` calls as batches through `run_batch`.

    There is no batching window: an idle batcher starts at once (a lone request pays no
    wait), and calls that arrive while a batch runs form the next one, up to
    `max_batch_size`. Under load batches grow by themselves; at concurrency 1 nothing waits.
    A caller that is cancelled (a client disconnect) is dropped from its batch if it has not
    started yet."""

    def __init__(
        self, run_batch: Callable[[list[In]], Awaitable[list[Out]]], max_batch_size: int
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self._queue: list[tuple[In, asyncio.Future[Out]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: In) -> Out:
        """The result of `item`'s batch for `item`; raises what `run_batch` raised."""
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self.max_batch_size]
            del self._queue[: self.max_batch_size]
            batch = [(item, fut) for item, fut in batch if not fut.done()]
            if not batch:
                continue
            try:
                results = await self._run_batch([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
