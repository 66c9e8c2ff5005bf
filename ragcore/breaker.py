"""A circuit breaker: after N failures in a window, calls are refused at once for a while,
then a few probes decide whether to close it again."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from utils.variant_settings import BreakerSettings

BreakerState = Literal["closed", "open", "half_open"]
STATE_VALUES: dict[BreakerState, int] = {"closed": 0, "half_open": 1, "open": 2}


class CircuitBreaker:
    """closed: calls pass, failures are counted. open: calls are refused until `open_s` has
    passed. half_open: `half_open_probes` calls pass; a success closes the breaker, a failure
    opens it again. Not thread-safe: one per engine per event loop."""

    def __init__(
        self,
        settings: BreakerSettings,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.on_change = on_change
        self._state: BreakerState = "closed"
        self._failures: deque[float] = deque()
        self._opened_at = 0.0
        self._probes = 0

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker whose time is up reads half_open)."""
        if self._state == "open" and self.clock() - self._opened_at >= self.settings.open_s:
            self._set("half_open")
            self._probes = 0
        return self._state

    def allow(self) -> bool:
        """Whether a call may go to the engine now (a half-open probe is counted)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and self._probes < self.settings.half_open_probes:
            self._probes += 1
            return True
        return False

    def success(self) -> None:
        """The call worked: a probe closes the breaker."""
        if self._state == "half_open":
            self._failures.clear()
            self._set("closed")

    def abandon(self) -> None:
        """The call ended without a verdict (the client went away): a probe is given back."""
        if self._state == "half_open" and self._probes > 0:
            self._probes -= 1

    def failure(self) -> None:
        """The call failed (an error or a timeout; not a client that went away)."""
        now = self.clock()
        if self._state == "half_open":
            self._open(now)
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.settings.window_s:
            self._failures.popleft()
        if self._state == "closed" and len(self._failures) >= self.settings.failures:
            self._open(now)

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._failures.clear()
        self._set("open")

    def _set(self, state: BreakerState) -> None:
        if state != self._state:
            self._state = state
            if self.on_change is not None:
                self.on_change(state)
