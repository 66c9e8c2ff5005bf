"""What the tenant gate needs from a store, as Protocols, and the records it exchanges.

Two implementations: the embedded default (SQLite under the state directory for keys and
usage, the in-memory limiter for counters, both inside one named Ray actor so that every
Ingress replica shares them) and Redis (keys, usage and counters in one Redis)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ragcore.tenancy.keys import ApiKey, Limits
from ragcore.tenancy.limiter import Decision, Subject


@dataclass(frozen=True)
class Admission:
    """One request to admit: its subjects, id and stream lease (None: not a stream)."""

    subjects: list[Subject]
    rid: str
    stream_ttl_s: float | None = None


@dataclass(frozen=True)
class UsageRecord:
    """One finished request, as accounted."""

    ts: float
    tenant: str
    key_id: str
    route: str
    collection: str
    status: int
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    request_id: str

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DayUsage:
    """A tenant's totals for one UTC day and route."""

    day: str  # YYYY-MM-DD
    route: str
    requests: int
    errors: int  # responses with status >= 400
    prompt_tokens: int
    completion_tokens: int


class KeyAdmin(Protocol):
    """What manage_keys.py does to a store (synchronous: a CLI)."""

    def add_key(self, key: ApiKey) -> None: ...

    def update_key(self, key: ApiKey) -> None: ...

    def get_key(self, key_id: str) -> ApiKey | None: ...

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]: ...

    def set_tenant_limits(self, tenant: str, limits: Limits) -> None: ...

    def tenant_limits(self, tenant: str) -> Limits | None: ...


class TenantStore(Protocol):
    """What the service calls on every request (asynchronous, shared by all replicas)."""

    async def lookup(self, key_hash: str) -> tuple[ApiKey, Limits | None] | None:
        """The key with this hash and its tenant's own limits, or None."""
        ...

    async def admit(self, subjects: list[Subject], rid: str, stream_ttl_s: float | None
                    ) -> Decision: ...  # fmt: skip

    async def admit_many(self, requests: list[Admission]) -> list[Decision]:
        """`admit` for each request in order, in one call (one round trip)."""
        ...

    async def reserve(self, subjects: list[Subject], rid: str, tokens: int) -> Decision: ...

    async def settle(self, subjects: list[Subject], rid: str, tokens: int) -> None: ...

    async def release(self, subjects: list[Subject], rid: str) -> None: ...

    async def record(self, records: list[UsageRecord]) -> None: ...

    async def usage(self, tenant: str, since_day: str) -> list[DayUsage]: ...

    async def snapshot(self, subjects: list[Subject]) -> dict[str, dict[str, int]]: ...
