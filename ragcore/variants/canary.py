"""The canary verdict: does a canary do worse than the baseline over the last window?"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from utils.variant_settings import CanarySettings


@dataclass(frozen=True)
class Outcome:
    """One served request of a variant."""

    at: float
    failed: bool  # an error status or a degraded answer
    latency_ms: float
    invalid: bool  # the generated answer failed validation


@dataclass(frozen=True)
class WindowStats:
    """A variant's figures over the window."""

    requests: int
    error_rate: float
    p95_ms: float
    invalid_rate: float


class CanaryMonitor:
    """Keeps each variant's outcomes over `window_s` and compares a canary with the baseline.
    The baseline with no traffic of its own in the window counts as perfect (0 errors, 0 ms):
    a canary is then judged against the margins alone."""

    def __init__(self, settings: CanarySettings, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.clock = clock
        self._outcomes: dict[str, deque[Outcome]] = {}

    def record(self, variant: str, failed: bool, latency_ms: float, invalid: bool) -> None:
        """Count one finished request of `variant`."""
        window = self._outcomes.setdefault(variant, deque())
        window.append(Outcome(self.clock(), failed, latency_ms, invalid))
        self._prune(window)

    def stats(self, variant: str) -> WindowStats:
        """The variant's figures over the window now."""
        window = self._outcomes.get(variant, deque())
        self._prune(window)
        if not window:
            return WindowStats(0, 0.0, 0.0, 0.0)
        n = len(window)
        return WindowStats(
            n,
            sum(o.failed for o in window) / n,
            float(np.percentile([o.latency_ms for o in window], 95)),
            sum(o.invalid for o in window) / n,
        )

    def verdict(self, canary: str, baseline: str) -> str | None:
        """Why the canary must be rolled back, or None (also while it has too few requests)."""
        mine, base = self.stats(canary), self.stats(baseline)
        if mine.requests < self.settings.min_requests:
            return None
        s = self.settings
        if mine.error_rate > base.error_rate + s.error_rate_margin:
            return "error_rate"
        if mine.p95_ms > base.p95_ms + s.p95_latency_margin_ms:
            return "p95_latency"
        if mine.invalid_rate > base.invalid_rate + s.validation_failure_margin:
            return "validation_failures"
        return None

    def _prune(self, window: deque[Outcome]) -> None:
        horizon = self.clock() - self.settings.window_s
        while window and window[0].at < horizon:
            window.popleft()
