"""Variant routing plus the canary's automatic rollback, shared by every replica through the
store: a replica that sees a canary fail rolls it back everywhere."""

from __future__ import annotations

import asyncio
from typing import Any

from ragcore.cache.store import CacheStore
from ragcore.metrics import MetricsSink, NullMetrics
from ragcore.variants.canary import CanaryMonitor
from ragcore.variants.routing import Route, VariantRouter
from utils.logs import get_logger
from utils.variant_settings import VariantSettings, VariantsSettings

log = get_logger("variants")


class Experiments:
    """Routes requests to variants, watches canaries and rolls them back."""

    def __init__(
        self,
        settings: VariantsSettings,
        store: CacheStore | None = None,
        metrics: MetricsSink | None = None,
    ) -> None:
        self.router = VariantRouter(settings)
        self.monitor = CanaryMonitor(settings.canary)
        self.store = store
        self.metrics = metrics or NullMetrics()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._confirmed: set[str] = set()  # rollbacks seen in the store
        self._publish_weights()

    @property
    def settings(self) -> VariantsSettings:
        return self.router.settings

    def update(self, settings: VariantsSettings) -> None:
        """New variants or weights, from a deploy or `user_config`; no request is dropped."""
        self.router.update(settings)
        self.monitor.settings = settings.canary
        self._publish_weights()
        log.info("variants updated", extra={"weights": self.router.weights()})

    def route(self, sticky_key: str, forced: str | None = None, may_force: bool = False) -> Route:
        """The variant of a request (see VariantRouter.pick)."""
        return self.router.pick(sticky_key, forced, may_force)

    def baseline(self) -> VariantSettings:
        return self.router.baseline()

    def record(self, variant: VariantSettings, failed: bool, latency_ms: float,
               invalid: bool) -> None:  # fmt: skip
        """Count a finished request; roll a failing canary back (here at once, and on every
        other replica through the store)."""
        self.monitor.record(variant.label, failed, latency_ms, invalid)
        if variant.role != "canary" or variant.label in self.router.rolled_back:
            return
        reason = self.monitor.verdict(variant.label, self.baseline().label)
        if reason is not None:
            self._roll_back(variant, reason)
            if self.store is not None:
                self._spawn(self.store.set_rollback(variant.label, reason))

    def _roll_back(self, variant: VariantSettings, reason: str) -> None:
        if self.router.roll_back(variant, reason):
            stats = self.monitor.stats(variant.label)
            base = self.monitor.stats(self.baseline().label)
            self.metrics.canary_rollback(variant.name, reason)
            log.warning("canary rolled back", extra={
                "variant": variant.label, "reason": reason, "requests": stats.requests,
                "error_rate": round(stats.error_rate, 3), "p95_ms": round(stats.p95_ms, 1),
                "invalid_rate": round(stats.invalid_rate, 3),
                "baseline_error_rate": round(base.error_rate, 3),
                "baseline_p95_ms": round(base.p95_ms, 1)})  # fmt: skip
            self._publish_weights()

    async def sync(self) -> None:
        """Apply the rollbacks other replicas published (and resets an admin made)."""
        if self.store is None:
            return
        published = await self.store.rollbacks()
        by_label = {v.label: v for v in self.settings.items}
        for label, reason in published.items():
            if label in by_label and label not in self.router.rolled_back:
                self._roll_back(by_label[label], reason)
        # Only a rollback once seen in the store and now gone was reset; one this replica
        # made a moment ago may not have reached the store yet.
        for label in list(self.router.rolled_back):
            if label in self._confirmed and label not in published:
                self.router.reset(label.split("@", 1)[0])
                self._publish_weights()
        self._confirmed = set(published)

    async def reset(self, name: str) -> bool:
        """Serve a rolled-back canary again (an explicit decision); False if it was not."""
        variant = self.settings.by_name().get(name)
        if variant is None:
            return False
        if self.store is not None:
            await self.store.clear_rollback(variant.label)
        done = self.router.reset(name)
        self._publish_weights()
        return done

    def state(self) -> list[dict[str, Any]]:
        """Each variant with its share now, its role and why it was rolled back."""
        weights = self.router.weights()
        out = []
        for v in self.settings.items:
            stats = self.monitor.stats(v.label)
            out.append({"name": v.name, "version": v.version, "role": v.role,
                        "configured_weight": v.weight, "share": round(weights[v.name], 4),
                        "rolled_back": self.router.rolled_back.get(v.label),
                        "window_requests": stats.requests,
                        "window_error_rate": round(stats.error_rate, 4),
                        "window_p95_ms": round(stats.p95_ms, 1)})  # fmt: skip
        return out

    def _publish_weights(self) -> None:
        for name, share in self.router.weights().items():
            self.metrics.variant_share(name, share)

    def _spawn(self, call: Any) -> None:
        task = asyncio.get_running_loop().create_task(call)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
