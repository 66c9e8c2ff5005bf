"""Whether the whole app is quiet, for shadow copies: every Ingress replica publishes its live
requests in flight and when it last started one to the shared store (the embedded actor or
Redis), and a copy starts only when no replica is busy or was busy within `shadow_idle_s`.

Why app-wide: replicas share the engine and, on one machine, the cores. A copy that only
waited for its own replica to be idle ran beside the next user's request on another replica
(measured: +25% on the live p50 at concurrency 1)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from utils.logs import get_logger
from utils.variant_settings import VariantsSettings

log = get_logger("shadow")
REFRESH_S = 2.0  # an unchanged state is re-published this often...
STALE_S = 10.0  # ...and a member not heard from for this long is gone (a dead replica)


class BoardStore(Protocol):
    """Where replicas publish their state (the answer cache's store implements it)."""

    async def beat(self, member: str, value: bytes) -> None: ...

    async def beats(self) -> dict[str, bytes]: ...


class LiveBoard:
    """This replica's live traffic, published; the app's, read back."""

    def __init__(
        self,
        store: BoardStore | None,
        settings: VariantsSettings,
        member: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.member = member or uuid.uuid4().hex[:12]
        self.clock = clock
        self.in_flight = 0
        self.last_live = 0.0
        self._changed = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None

    def started(self) -> None:
        """A live request began here."""
        self.in_flight += 1
        self.last_live = self.clock()
        self._publish_soon()

    def finished(self) -> None:
        """A live request ended here (the idle time counts from the last start or end)."""
        self.in_flight -= 1
        self.last_live = self.clock()
        self._publish_soon()

    def _publish_soon(self) -> None:
        # Only while shadows exist: without them nobody reads the board.
        if self.store is None or not self.settings.has_shadows:
            return
        self._changed.set()
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.get_running_loop().create_task(self._publish_loop())

    def busy_here(self, limit: int = 0) -> bool:
        """More than `limit` live requests here, or (for limit 0) one within the idle time."""
        if self.in_flight > limit:
            return True
        return limit == 0 and self.clock() - self.last_live < self.settings.shadow_idle_s

    async def busy(self, limit: int = 0) -> bool:
        """Whether any replica is busy (as `busy_here`); an unreadable board counts as busy."""
        if self.busy_here(limit):
            return True
        if self.store is None:
            return False
        try:
            beats = await asyncio.wait_for(self.store.beats(), self.settings.shadow_poll_s * 10)
        except Exception as exc:
            log.warning("live board unreadable", extra={"error": repr(exc)[:200]})
            return True
        now, total = self.clock(), self.in_flight  # the limit is app-wide: ours count too
        for member, raw in beats.items():
            state = json.loads(raw)
            if member == self.member or now - state["ts"] > STALE_S:
                continue
            total += state["in_flight"]
            if limit == 0 and now - state["last_live"] < self.settings.shadow_idle_s:
                return True
        return total > limit

    async def _publish_loop(self) -> None:
        """Publish on a change (at most every shadow_poll_s) and every REFRESH_S."""
        assert self.store is not None
        while self.settings.has_shadows:
            self._changed.clear()
            state = {"in_flight": self.in_flight, "last_live": self.last_live, "ts": self.clock()}
            try:
                await asyncio.wait_for(self.store.beat(self.member, json.dumps(state).encode()),
                                       self.settings.shadow_poll_s * 10)  # fmt: skip
            except Exception as exc:
                log.warning("live board unwritable", extra={"error": repr(exc)[:200]})
            await asyncio.sleep(self.settings.shadow_poll_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), REFRESH_S)
