"""The canary verdict and the circuit breaker, on a fake clock."""

from __future__ import annotations

from ragcore.breaker import CircuitBreaker
from ragcore.variants.canary import CanaryMonitor
from utils.variant_settings import BreakerSettings, CanarySettings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_canary_failing_more_than_the_margin_is_judged_after_min_requests() -> None:
    clock = Clock()
    monitor = CanaryMonitor(CanarySettings(min_requests=10, error_rate_margin=0.1), clock)
    for i in range(20):
        monitor.record("base", i % 10 == 0, 100, False)  # 10% errors
    for _ in range(9):
        monitor.record("canary", True, 100, False)
    assert monitor.verdict("canary", "base") is None  # 9 < min_requests
    monitor.record("canary", True, 100, False)
    assert monitor.verdict("canary", "base") == "error_rate"


def test_latency_and_validation_margins_and_the_window() -> None:
    clock = Clock()
    settings = CanarySettings(min_requests=5, window_s=10, p95_latency_margin_ms=500,
                              validation_failure_margin=0.2)  # fmt: skip
    monitor = CanaryMonitor(settings, clock)
    for _ in range(5):
        monitor.record("base", False, 100, False)
        monitor.record("slow", False, 700, False)
        monitor.record("bad", False, 100, True)
        monitor.record("fine", False, 550, False)
    assert monitor.verdict("slow", "base") == "p95_latency"
    assert monitor.verdict("bad", "base") == "validation_failures"
    assert monitor.verdict("fine", "base") is None
    clock.now = 11  # everything left the window
    assert monitor.stats("slow").requests == 0 and monitor.verdict("slow", "base") is None


def test_the_breaker_opens_after_n_failures_in_the_window_and_probes_half_open() -> None:
    clock = Clock()
    changes: list[str] = []
    breaker = CircuitBreaker(BreakerSettings(failures=3, window_s=10, open_s=5), clock,
                             changes.append)  # fmt: skip
    breaker.failure()
    clock.now = 11  # the first failure left the window
    breaker.failure()
    breaker.failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now = 16.1
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.abandon()  # the probe's client went away: another may probe
    assert breaker.allow()
    breaker.failure()  # the probe failed: open again
    assert breaker.state == "open"
    clock.now = 22
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed"
    assert changes == ["open", "half_open", "open", "half_open", "closed"]
