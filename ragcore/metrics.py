"""What the service measures, as a Protocol; deployments/metrics.py exports it to Prometheus."""

from __future__ import annotations

import time
from typing import Protocol

LATENCY_BOUNDARIES_MS: list[float] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000,
                                      10000, 30000, 60000]  # fmt: skip
BATCH_BOUNDARIES: list[float] = [1, 2, 4, 8, 16, 32, 64, 128]
STAGES = ("embed", "retrieve", "generate", "end_to_end")


def elapsed_ms(start: float) -> float:
    """Milliseconds since `start`, a time.perf_counter() reading."""
    return (time.perf_counter() - start) * 1000.0


class MetricsSink(Protocol):
    """What the plain service reports; `NullMetrics` for tests, `ServeMetrics` in Serve."""

    def stage(self, stage: str, route: str, ms: float) -> None: ...

    def request(self, route: str, status: int) -> None: ...

    def tokens(
        self, prompt: int, completion: int, prompt_version: str, variant: str = ""
    ) -> None: ...

    def first_token(self, ms: float, prompt_version: str, variant: str = "") -> None: ...

    def per_output_token(self, ms: float, prompt_version: str, variant: str = "") -> None: ...

    def empty_retrieval(self, route: str) -> None: ...

    def degraded(self, reason: str, prompt_version: str, variant: str = "") -> None: ...

    def batch(self, stage: str, size: int) -> None: ...

    def answer(self, mode: str, prompt_version: str, reason: str, variant: str = "") -> None: ...

    def groundedness(self, value: float, prompt_version: str, variant: str = "") -> None: ...

    def tenant_request(self, tenant: str, route: str, status: int) -> None: ...

    def tenant_tokens(self, tenant: str, prompt: int, completion: int) -> None: ...

    def limited(self, tenant: str, reason: str) -> None: ...

    def auth_failure(self, reason: str) -> None: ...

    def store_error(self, op: str) -> None: ...

    def store_bypassed(self, op: str) -> None: ...

    def guard(self, guard: str, reason: str, action: str, tenant: str) -> None: ...

    def redaction(self, entity: str, tenant: str) -> None: ...

    def cache(self, tier: str, outcome: str) -> None: ...

    def breaker_state(self, engine: str, state: int) -> None: ...

    def fallback(self, engine: str, reason: str) -> None: ...

    def rerank(self, outcome: str) -> None: ...

    def canary_rollback(self, variant: str, reason: str) -> None: ...

    def variant_share(self, variant: str, share: float) -> None: ...

    def variant_request(self, variant: str, route: str, status: int, path: str) -> None: ...

    def feedback(self, variant: str, rating: str) -> None: ...

    def review_queued(self, reason: str) -> None: ...

    def review_pending(self, count: int) -> None: ...

    def shadow(self, variant: str, outcome: str) -> None: ...

    def shadow_comparison(
        self, variant: str, overlap: float, similarity: float | None, live_ms: float,
        shadow_ms: float,
    ) -> None: ...  # fmt: skip


class NullMetrics:
    """Drops everything."""

    def stage(self, stage: str, route: str, ms: float) -> None:
        pass

    def request(self, route: str, status: int) -> None:
        pass

    def tokens(self, prompt: int, completion: int, prompt_version: str, variant: str = "") -> None:
        pass

    def first_token(self, ms: float, prompt_version: str, variant: str = "") -> None:
        pass

    def per_output_token(self, ms: float, prompt_version: str, variant: str = "") -> None:
        pass

    def empty_retrieval(self, route: str) -> None:
        pass

    def degraded(self, reason: str, prompt_version: str, variant: str = "") -> None:
        pass

    def batch(self, stage: str, size: int) -> None:
        pass

    def answer(self, mode: str, prompt_version: str, reason: str, variant: str = "") -> None:
        pass

    def groundedness(self, value: float, prompt_version: str, variant: str = "") -> None:
        pass

    def tenant_request(self, tenant: str, route: str, status: int) -> None:
        pass

    def tenant_tokens(self, tenant: str, prompt: int, completion: int) -> None:
        pass

    def limited(self, tenant: str, reason: str) -> None:
        pass

    def auth_failure(self, reason: str) -> None:
        pass

    def store_error(self, op: str) -> None:
        pass

    def store_bypassed(self, op: str) -> None:
        pass

    def guard(self, guard: str, reason: str, action: str, tenant: str) -> None:
        pass

    def redaction(self, entity: str, tenant: str) -> None:
        pass

    def cache(self, tier: str, outcome: str) -> None:
        pass

    def breaker_state(self, engine: str, state: int) -> None:
        pass

    def fallback(self, engine: str, reason: str) -> None:
        pass

    def rerank(self, outcome: str) -> None:
        pass

    def canary_rollback(self, variant: str, reason: str) -> None:
        pass

    def variant_share(self, variant: str, share: float) -> None:
        pass

    def variant_request(self, variant: str, route: str, status: int, path: str) -> None:
        pass

    def feedback(self, variant: str, rating: str) -> None:
        pass

    def review_queued(self, reason: str) -> None:
        pass

    def review_pending(self, count: int) -> None:
        pass

    def shadow(self, variant: str, outcome: str) -> None:
        pass

    def shadow_comparison(
        self, variant: str, overlap: float, similarity: float | None, live_ms: float,
        shadow_ms: float,
    ) -> None:  # fmt: skip
        pass


class BoundedLabels:
    """A metric label that stays bounded: the first `limit` names seen keep their name,
    later ones become "other" (per process)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def __call__(self, name: str) -> str:
        if name in self._seen:
            return name
        if len(self._seen) < self.limit:
            self._seen.add(name)
            return name
        return "other"
