"""The tenant store behind every Ingress replica: the embedded default (one named Ray actor
that owns the SQLite ledger and the in-memory limiter, so all replicas on all nodes share one
set of counters) or Redis."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

from ragcore.tenancy.keys import ApiKey, Limits
from ragcore.tenancy.limiter import Decision, MemoryLimits, Subject
from ragcore.tenancy.sqlite_ledger import SqliteLedger
from ragcore.tenancy.stores import Admission, DayUsage, TenantStore, UsageRecord
from utils.auth_settings import AuthSettings

NAMESPACE = "rag"


class TenantStoreActor:
    """The embedded store. Calls run on a few threads so that a usage write (an fsync) never
    holds up an admission; every limiter operation takes one lock, so each admission and
    reservation is atomic across all replicas."""

    def __init__(self, state_dir: str) -> None:
        self.ledger = SqliteLedger(Path(state_dir) / "tenants.db")
        # Counters restart empty, but a day's tokens restart from the durable usage records.
        self.limits = MemoryLimits(day_seed=self.ledger.day_tokens)
        self._lock = threading.Lock()

    def lookup(self, key_hash: str) -> tuple[ApiKey, Limits | None] | None:
        # Read from SQLite on every call: the CLI's changes apply without a restart.
        key = self.ledger.find_key(key_hash)
        return None if key is None else (key, self.ledger.tenant_limits(key.tenant))

    def admit(self, subjects: list[Subject], rid: str, stream_ttl_s: float | None) -> Decision:
        with self._lock:
            return self.limits.admit(subjects, rid, stream_ttl_s)

    def admit_many(self, requests: list[Admission]) -> list[Decision]:
        with self._lock:
            return [self.limits.admit(r.subjects, r.rid, r.stream_ttl_s) for r in requests]

    def reserve(self, subjects: list[Subject], rid: str, tokens: int) -> Decision:
        with self._lock:
            return self.limits.reserve(subjects, rid, tokens)

    def settle(self, subjects: list[Subject], rid: str, tokens: int) -> None:
        with self._lock:
            self.limits.settle(subjects, rid, tokens)

    def release(self, subjects: list[Subject], rid: str) -> None:
        with self._lock:
            self.limits.release(subjects, rid)

    def record(self, records: list[UsageRecord]) -> None:
        self.ledger.record(records)

    def usage(self, tenant: str, since_day: str) -> list[DayUsage]:
        return self.ledger.usage(tenant, since_day)

    def snapshot(self, subjects: list[Subject]) -> dict[str, dict[str, int]]:
        with self._lock:
            return self.limits.snapshot(subjects)


class ActorTenantStore:
    """The `TenantStore` protocol over the actor's handle (timeouts are the gate's)."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    async def lookup(self, key_hash: str) -> tuple[ApiKey, Limits | None] | None:
        found: tuple[ApiKey, Limits | None] | None = await self.actor.lookup.remote(key_hash)
        return found

    async def admit(self, subjects: list[Subject], rid: str, stream_ttl_s: float | None
                    ) -> Decision:  # fmt: skip
        decision: Decision = await self.actor.admit.remote(subjects, rid, stream_ttl_s)
        return decision

    async def admit_many(self, requests: list[Admission]) -> list[Decision]:
        decisions: list[Decision] = await self.actor.admit_many.remote(requests)
        return decisions

    async def reserve(self, subjects: list[Subject], rid: str, tokens: int) -> Decision:
        decision: Decision = await self.actor.reserve.remote(subjects, rid, tokens)
        return decision

    async def settle(self, subjects: list[Subject], rid: str, tokens: int) -> None:
        await self.actor.settle.remote(subjects, rid, tokens)

    async def release(self, subjects: list[Subject], rid: str) -> None:
        await self.actor.release.remote(subjects, rid)

    async def record(self, records: list[UsageRecord]) -> None:
        await self.actor.record.remote(records)

    async def usage(self, tenant: str, since_day: str) -> list[DayUsage]:
        rows: list[DayUsage] = await self.actor.usage.remote(tenant, since_day)
        return rows

    async def snapshot(self, subjects: list[Subject]) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = await self.actor.snapshot.remote(subjects)
        return out


def actor_name(state_dir: Path) -> str:
    """One actor per state directory (two apps with their own state never share counters)."""
    return "tenant-store-" + hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]


def embedded_actor(state_dir: Path) -> Any:
    """The named actor, created by the first replica that asks. Detached, so it outlives the
    replica that created it; restarted by Ray if it dies; on the head node, where the state
    directory and manage_keys.py are."""
    import ray

    cls = ray.remote(TenantStoreActor)
    return cls.options(
        name=actor_name(state_dir), namespace=NAMESPACE, get_if_exists=True,
        lifetime="detached", num_cpus=0, max_restarts=-1, max_concurrency=4,
        resources={"node:__internal_head__": 0.001},
    ).remote(str(state_dir))  # fmt: skip


def build_tenant_store(settings: AuthSettings) -> TenantStore:
    """The store the settings name."""
    if settings.store == "redis":
        from ragcore.tenancy.redis_store import RedisTenantStore

        return RedisTenantStore(settings.redis_url, settings.store_timeout_s)
    return ActorTenantStore(embedded_actor(settings.state_dir))
