"""The tenant gate: who is calling, what they may read, whether a limit allows it, and what
it used. Plain and async; the store behind it is the embedded actor or Redis."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ragcore.batching import MicroBatcher
from ragcore.metrics import BoundedLabels, MetricsSink, NullMetrics
from ragcore.protocols import Usage
from ragcore.tenancy.headers import rate_headers
from ragcore.tenancy.keys import Limits, Principal, hash_secret
from ragcore.tenancy.limiter import Decision, Subject
from ragcore.tenancy.stores import Admission, DayUsage, TenantStore, UsageRecord
from ragcore.tenancy.usage_log import UsageLog
from utils.auth_settings import AuthSettings
from utils.errors import (
    AuthenticationError,
    ForbiddenError,
    RateLimitedError,
    RequestRejectedError,
    StoreUnavailableError,
)
from utils.logs import get_logger

log = get_logger("tenants")
T = TypeVar("T")
MAX_CACHED_KEYS = 10_000
# A key whose last admission in this replica left at least this many requests of its window is
# admitted beside its work (the check overlaps retrieval instead of preceding it). A key near
# or over its limit is checked first, so a refused request costs no retrieval.
OPTIMISTIC_MIN_REMAINING = 8
ADMISSION_BATCH = 64


@dataclass
class Caller:
    """One request's tenant context: the principal, its limit subjects and what it used."""

    principal: Principal
    subjects: list[Subject]
    rid: str = field(default_factory=lambda: uuid.uuid4().hex)
    collection: str = ""
    stream_lease: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    started: float = field(default_factory=time.perf_counter)
    admission: asyncio.Task[None] | None = None  # an admission running beside the work


class TenantGate:
    """Authenticates keys (cached for `key_cache_s`), checks scopes and collections, admits
    requests, reserves and settles tokens, and accounts usage in batches."""

    def __init__(
        self,
        store: TenantStore,
        settings: AuthSettings,
        default_collection: str,
        metrics: MetricsSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.settings = settings
        self.default_collection = default_collection
        self.metrics = metrics or NullMetrics()
        self.clock = clock
        limits = settings.default_limits
        self.default_limits = Limits(limits.rpm, limits.tokens_per_minute,
                                     limits.tokens_per_day, limits.max_streams)  # fmt: skip
        self._keys: dict[str, tuple[float, Principal | None]] = {}
        self.usage_log = UsageLog(store, settings, self.metrics)
        self._labels = BoundedLabels(settings.metrics_max_tenants)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._headroom: dict[str, int] = {}  # key id -> requests left after its last admission
        # Admissions that arrive while one is in flight go to the store together, in one call.
        self._admissions = MicroBatcher(self._admit_batch, ADMISSION_BATCH)

    # -- who is calling
    async def authenticate(self, secret: str | None) -> Principal:
        """The principal of a key; AuthenticationError (401) for none, unknown, revoked or
        expired keys alike; StoreUnavailableError (503) when keys cannot be read."""
        if not secret:
            self.metrics.auth_failure("missing")
            raise AuthenticationError("missing API key")
        digest = hash_secret(secret)
        cached = self._keys.get(digest)
        now = self.clock()
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            principal = await self._lookup(digest, cached)
        if principal is None:
            self.metrics.auth_failure("invalid")
            raise AuthenticationError("invalid API key")
        return principal

    async def _lookup(
        self, digest: str, stale: tuple[float, Principal | None] | None
    ) -> Principal | None:
        try:
            found = await self._timed("lookup", self.store.lookup(digest))
        except StoreUnavailableError:
            if stale is not None and self.settings.on_store_failure == "open":
                return stale[1]  # fail open: the last known answer for this key
            raise
        principal = None
        if found is not None and found[0].active(time.time()):
            key, tenant_limits = found
            principal = Principal(key.tenant, key.key_id, frozenset(key.scopes),
                                  key.collections or (self.default_collection,), key.limits,
                                  tenant_limits or self.default_limits)  # fmt: skip
        if len(self._keys) >= MAX_CACHED_KEYS:
            self._keys.clear()
        self._keys[digest] = (self.clock() + self.settings.key_cache_s, principal)
        return principal

    def authorize(self, principal: Principal, scope: str) -> None:
        """ForbiddenError (403) unless the key holds `scope`."""
        if not principal.may(scope):
            self.metrics.auth_failure("scope")
            raise ForbiddenError(f"this API key lacks the '{scope}' scope")

    def collection(self, principal: Principal, requested: str | None) -> str:
        """The collection a request reads: the one it names, if the key may read it, else
        the key's default. ForbiddenError (403) outside the key's collections."""
        if requested is None:
            return principal.collections[0]
        if requested not in principal.collections:
            self.metrics.auth_failure("collection")
            raise ForbiddenError(f"this API key may not read collection '{requested}'")
        return requested

    def caller(self, principal: Principal) -> Caller:
        """A new request context for `principal`."""
        subjects = [Subject(f"tenant:{principal.tenant}", principal.tenant_limits)]
        if principal.key_limits.any:
            subjects.append(Subject(f"key:{principal.key_id}", principal.key_limits))
        return Caller(principal, subjects)

    # -- limits
    async def start_admission(self, caller: Caller, stream: bool = False) -> None:
        """Admit the request: at once when its key has headroom left (the result is awaited
        by `admitted` before anything is sent), else before returning."""
        headroom = self._headroom.get(caller.principal.key_id, 0)
        if stream or headroom < OPTIMISTIC_MIN_REMAINING:
            await self.admit(caller, stream)
            return
        caller.admission = asyncio.get_running_loop().create_task(self.admit(caller))

    async def admitted(self, caller: Caller) -> None:
        """Wait for an admission started beside the work; raises its 429 or 503."""
        task, caller.admission = caller.admission, None
        if task is not None:
            await asyncio.shield(task)

    async def admit(self, caller: Caller, stream: bool = False) -> None:
        """Count the request against requests per minute (and hold a stream lease);
        RateLimitedError (429) with exact headers when a limit refuses it."""
        ttl = self.settings.stream_lease_s if stream else None
        admission = Admission(caller.subjects, caller.rid, ttl)
        decision = await self._timed("admit", self._admissions.submit(admission))
        if decision is None:
            return  # failed open
        caller.stream_lease = stream
        self._check(caller, decision)

    async def _admit_batch(self, admissions: list[Admission]) -> list[Decision]:
        return await self.store.admit_many(admissions)

    async def reserve(self, caller: Caller, tokens: int) -> None:
        """Hold `tokens` of every token budget; 429 when one is spent, 422 when the request
        alone is larger than a budget."""
        call = self.store.reserve(caller.subjects, caller.rid, tokens)
        decision = await self._timed("reserve", call)
        if decision is None:
            return
        if decision.reason == "too_large":
            self.metrics.limited(self._label(caller), decision.resource)
            raise RequestRejectedError(
                f"this request needs up to {tokens} tokens (prompt + max_tokens) but the "
                f"{decision.resource.replace('_', ' ')} limit is {decision.limit}; "
                "ask for fewer max_tokens or a smaller top_k"
            )
        self._check(caller, decision)

    def settle(self, caller: Caller, usage: Usage) -> None:
        """Replace the reservation with `usage`, in the background: it completes even when the
        request's task is cancelled (a client disconnect)."""
        caller.usage = usage
        self._spawn(self.store.settle(caller.subjects, caller.rid, usage.total), "settle")

    def _check(self, caller: Caller, decision: Decision) -> None:
        headers = rate_headers(decision)
        if decision.resource in ("requests", ""):  # "": no request limit applies
            left = decision.remaining if decision.resource else OPTIMISTIC_MIN_REMAINING
            self._headroom[caller.principal.key_id] = left if decision.allowed else 0
        if decision.allowed:
            if decision.resource == "requests" or not caller.headers:
                caller.headers = headers
            return
        self.metrics.limited(self._label(caller), decision.reason)
        what = decision.reason.replace("_", " ")
        raise RateLimitedError(f"{what} limit of {decision.limit} reached", headers)

    # -- accounting
    def finish(self, caller: Caller, route: str, status: int, request_id: str) -> None:
        """The request is over: release its stream lease, count and record it."""
        if caller.admission is not None:  # the work failed first: still collect the outcome
            caller.admission.add_done_callback(lambda task: task.cancelled() or task.exception())
        if caller.stream_lease:
            caller.stream_lease = False
            self._spawn(self.store.release(caller.subjects, caller.rid), "release")
        label = self._label(caller)
        usage = caller.usage
        self.metrics.tenant_request(label, route, status)
        self.metrics.tenant_tokens(label, usage.prompt, usage.completion)
        self.usage_log.add(UsageRecord(
            time.time(), caller.principal.tenant, caller.principal.key_id, route,
            caller.collection, status, usage.prompt, usage.completion,
            round((time.perf_counter() - caller.started) * 1000, 2), request_id))  # fmt: skip

    async def flush(self) -> None:
        """Write the buffered usage records now."""
        await self.usage_log.flush()

    async def run_flusher(self) -> None:
        """Write usage records every `usage_flush_s` until cancelled."""
        await self.usage_log.run()

    async def usage(self, tenant: str, since_day: str) -> list[DayUsage]:
        """A tenant's totals per day and route."""
        rows = await self._timed("usage", self.store.usage(tenant, since_day))
        return rows or []

    async def snapshot(self, caller: Caller) -> dict[str, dict[str, int]]:
        """What each of the caller's subjects uses in its windows now."""
        return await self._timed("snapshot", self.store.snapshot(caller.subjects)) or {}

    # -- plumbing
    def _label(self, caller: Caller) -> str:
        """The tenant as a metric label (bounded cardinality)."""
        return self._labels(caller.principal.tenant)

    async def _timed(self, op: str, call: Awaitable[T]) -> T | None:
        """A store call with the timeout and the failure policy: closed raises
        StoreUnavailableError (503); open logs, counts and returns None (allowed)."""
        start = time.perf_counter()
        try:
            result = await asyncio.wait_for(call, self.settings.store_timeout_s)
        except Exception as exc:
            self.metrics.store_error(op)
            why = {"op": op, "error": repr(exc)[:200]}
            if self.settings.on_store_failure == "closed" or op == "lookup":
                log.error("tenant store unavailable", extra=why)
                raise StoreUnavailableError(f"the tenant store is unavailable ({op})") from exc
            log.warning("tenant store unavailable; failing open", extra=why)
            self.metrics.store_bypassed(op)
            return None
        self.metrics.stage("store", op, (time.perf_counter() - start) * 1000)
        return result

    def _spawn(self, call: Awaitable[Any], op: str) -> None:
        async def run() -> None:
            # Logged and counted; the lease or reservation then expires with its window.
            with contextlib.suppress(StoreUnavailableError):
                await self._timed(op, call)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for background settles and releases (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


class CallerBudget:
    """The `TokenBudget` of one request, through the gate."""

    def __init__(self, gate: TenantGate, caller: Caller) -> None:
        self.gate = gate
        self.caller = caller
        self.reserved = False

    async def reserve(self, tokens: int) -> None:
        await self.gate.admitted(self.caller)  # no generation before the request is admitted
        await self.gate.reserve(self.caller, tokens)
        self.reserved = True

    async def settle(self, usage: Usage) -> None:
        if self.reserved:
            self.reserved = False
            self.gate.settle(self.caller, usage)
        else:
            self.caller.usage = usage
