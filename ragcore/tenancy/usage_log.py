"""Usage records of one replica, buffered and written to the store in batches."""

from __future__ import annotations

from ragcore.buffered_log import BufferedLog
from ragcore.metrics import MetricsSink
from ragcore.tenancy.stores import TenantStore, UsageRecord
from utils.auth_settings import AuthSettings

MAX_BUFFERED_RECORDS = 100_000  # while the store is down; then the oldest go (and are counted)


class UsageLog(BufferedLog[UsageRecord]):
    """Buffers finished requests and writes them every `usage_flush_s`; a failed write keeps
    them for the next one."""

    def __init__(self, store: TenantStore, settings: AuthSettings, metrics: MetricsSink) -> None:
        def failed(op: str) -> None:
            metrics.store_error("usage_dropped" if op == "dropped" else op)

        super().__init__(store.record, settings.usage_flush_s, settings.store_timeout_s * 5,
                         failed, "usage", MAX_BUFFERED_RECORDS)  # fmt: skip
