"""Usage records of one replica, buffered and written to the store in batches."""

from __future__ import annotations

import asyncio

from ragcore.metrics import MetricsSink
from ragcore.tenancy.stores import TenantStore, UsageRecord
from utils.auth_settings import AuthSettings
from utils.logs import get_logger

log = get_logger("tenants")
MAX_BUFFERED_RECORDS = 100_000  # while the store is down; then the oldest go (and are counted)


class UsageLog:
    """Buffers finished requests and writes them every `usage_flush_s`; a failed write keeps
    them for the next one."""

    def __init__(self, store: TenantStore, settings: AuthSettings, metrics: MetricsSink) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self._records: list[UsageRecord] = []

    def add(self, record: UsageRecord) -> None:
        """Buffer one finished request."""
        if len(self._records) >= MAX_BUFFERED_RECORDS:
            self._records.pop(0)
            self.metrics.store_error("usage_dropped")
        self._records.append(record)

    async def flush(self) -> None:
        """Write the buffered records; kept for the next try when the store is down."""
        if not self._records:
            return
        batch, self._records = self._records, []
        try:
            await asyncio.wait_for(self.store.record(batch), self.settings.store_timeout_s * 5)
        except Exception as exc:
            self.metrics.store_error("record")
            why = {"records": len(batch), "error": repr(exc)[:200]}
            log.warning("usage not written yet; will retry", extra=why)
            self._records = batch + self._records

    async def run(self) -> None:
        """Flush every `usage_flush_s` until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(self.settings.usage_flush_s)
                await self.flush()
        finally:
            await asyncio.shield(self.flush())
