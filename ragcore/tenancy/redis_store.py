"""The Redis store: keys, tenant limits, usage and limiter counters in one Redis, shared by
every replica (and by the CLI, synchronously).

The limiter is MemoryLimits (limiter.py) run as Lua scripts (redis_lua.py): each operation is
one script, atomic across all subjects, on the server's clock unless a test gives one. Usage
goes to a capped stream of records and to per-tenant per-day totals. Every async call has a
deadline and is never retried (a limiter script whose reply was lost may have run: running it
again would charge twice); a connection failure or missed deadline raises
StoreUnavailableError, with redis's error as its cause, and the caller's policy decides."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, TypeVar

import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT, FieldT

from ragcore.tenancy.keys import ApiKey, Limits, astuple
from ragcore.tenancy.limiter import Decision, Subject
from ragcore.tenancy.redis_lua import ADD_KEY, LIMITER_SCRIPTS, LOOKUP, UPDATE_KEY
from ragcore.tenancy.sqlite_ledger import day_label
from ragcore.tenancy.stores import Admission, DayUsage, UsageRecord
from utils.errors import StoreUnavailableError

T = TypeVar("T")

# Key names, in one place for the CLI's admin and the service's store.
PREFIX = "rag:"
KEYS = PREFIX + "keys"  # key_id -> ApiKey JSON
KEY_HASHES = PREFIX + "key_hashes"  # key_hash -> key_id
TENANTS = PREFIX + "tenants"  # tenant -> Limits JSON
REQUESTS = PREFIX + "requests"  # capped stream of UsageRecords
REQUESTS_MAXLEN = 1_000_000
USAGE_FIELDS = ("requests", "errors", "prompt_tokens", "completion_tokens")


def subject_keys(subject: str) -> list[str]:
    """A limiter subject's five keys, in the order redis_lua.py expects them."""
    base = f"{PREFIX}lim:{subject}:"
    return [base + "req", base + "tok", base + "tokn", base + "streams", base + "day:"]


def usage_key(tenant: str, day: str) -> str:
    """The hash of a tenant's totals on one UTC day (YYYY-MM-DD): `route|field` -> count."""
    return f"{PREFIX}usage:{tenant}:{day}"


def usage_days_key(tenant: str) -> str:
    """The set of days a tenant has totals for (so usage() needs no SCAN)."""
    return f"{PREFIX}usage_days:{tenant}"


def _limits_json(limits: Limits) -> str:
    return json.dumps(asdict(limits))


class RedisKeyAdmin:
    """`KeyAdmin` on Redis, for manage_keys.py (synchronous)."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self._redis = redis.Redis.from_url(url, decode_responses=True, socket_timeout=timeout_s,
                                           socket_connect_timeout=timeout_s)  # fmt: skip
        self._add = self._redis.register_script(ADD_KEY)
        self._update = self._redis.register_script(UPDATE_KEY)

    def close(self) -> None:
        """Close the connections."""
        self._redis.close()

    def add_key(self, key: ApiKey) -> None:
        """Store a new key; ValueError when its id or hash is already stored."""
        row = json.dumps(key.to_row())
        if not self._add(keys=[KEYS, KEY_HASHES], args=[key.key_id, key.key_hash, row]):
            raise ValueError(f"key {key.key_id} (or its hash) already exists")

    def update_key(self, key: ApiKey) -> None:
        """Replace a stored key (revoke, expire); a key that is not stored is ignored."""
        self._update(keys=[KEYS, KEY_HASHES],
                     args=[key.key_id, key.key_hash, json.dumps(key.to_row())])  # fmt: skip

    def get_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, active or not."""
        body = self._redis.hget(KEYS, key_id)
        return ApiKey.from_row(json.loads(str(body))) if body else None

    def find_key(self, key_hash: str) -> ApiKey | None:
        """The key with this hash, active or not."""
        key_id = self._redis.hget(KEY_HASHES, key_hash)
        return self.get_key(str(key_id)) if key_id else None

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        """All keys (of one tenant), oldest first: a hash has no insertion order."""
        keys = [ApiKey.from_row(json.loads(body)) for body in self._redis.hvals(KEYS)]
        keys = [k for k in keys if tenant is None or k.tenant == tenant]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    def set_tenant_limits(self, tenant: str, limits: Limits) -> None:
        """Set a tenant's own limits (replacing any)."""
        self._redis.hset(TENANTS, tenant, _limits_json(limits))

    def tenant_limits(self, tenant: str) -> Limits | None:
        """A tenant's own limits, or None when none were set."""
        body = self._redis.hget(TENANTS, tenant)
        return Limits(**json.loads(str(body))) if body else None


def _limit_args(subjects: list[Subject]) -> list[str]:
    return [("" if v is None else str(v)) for s in subjects for v in astuple(s.limits)]


def _decision(reply: list[Any]) -> Decision:
    allowed, reason, retry, resource, limit, remaining, reset = reply
    return Decision(bool(allowed), reason, float(retry), resource, int(limit), int(remaining),
                    float(reset))  # fmt: skip


class RedisTenantStore:
    """`TenantStore` on Redis (asyncio). `clock` replaces the server's TIME (tests only: every
    replica must share one clock). Each call fails within `timeout_s`."""

    def __init__(
        self, url: str, timeout_s: float = 1.0, clock: Callable[[], float] | None = None
    ) -> None:
        self.timeout_s = timeout_s
        self.clock = clock
        # No retries: see the module docstring.
        self._redis = redis.asyncio.Redis.from_url(
            url, decode_responses=True, socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0),
        )  # fmt: skip
        self._scripts = {name: self._redis.register_script(src)
                         for name, src in LIMITER_SCRIPTS.items()}  # fmt: skip
        self._lookup = self._redis.register_script(LOOKUP)

    async def close(self) -> None:
        """Close the connections."""
        await self._redis.aclose()

    async def _call(self, awaitable: Awaitable[T]) -> T:
        # socket_timeout bounds each read, not a whole call (connect, then write, then read).
        # The messages name no address: the URL may hold a password, and a 503 shows them.
        try:
            async with asyncio.timeout(self.timeout_s):
                return await awaitable
        except (TimeoutError, RedisTimeoutError) as exc:
            raise StoreUnavailableError(f"Redis did not answer within {self.timeout_s} s") from exc
        except (RedisConnectionError, OSError) as exc:
            raise StoreUnavailableError("Redis is unreachable") from exc

    async def _limiter(self, name: str, subjects: list[Subject], *extra: EncodableT) -> Any:
        now = "" if self.clock is None else repr(float(self.clock()))
        keys = [k for s in subjects for k in subject_keys(s.name)]
        args: list[EncodableT] = [now, *_limit_args(subjects), *extra]
        return await self._call(self._scripts[name](keys=keys, args=args))

    async def lookup(self, key_hash: str) -> tuple[ApiKey, Limits | None] | None:
        """The key with this hash and its tenant's own limits, or None."""
        reply = await self._call(self._lookup(keys=[KEY_HASHES, KEYS, TENANTS], args=[key_hash]))
        if not reply:
            return None
        body, limits = reply
        key = ApiKey.from_row(json.loads(body))
        return key, (Limits(**json.loads(limits)) if limits else None)

    async def admit(
        self, subjects: list[Subject], rid: str, stream_ttl_s: float | None
    ) -> Decision:
        """MemoryLimits.admit, atomically in Redis."""
        ttl = "" if stream_ttl_s is None else repr(float(stream_ttl_s))
        # The nonce makes each admission its own member of the request log, even for a rid
        # admitted twice.
        nonce = secrets.token_hex(6)
        return _decision(await self._limiter("admit", subjects, rid, nonce, ttl))

    async def admit_many(self, requests: list[Admission]) -> list[Decision]:
        """`admit` for each request, in order, in one pipelined round trip (each script is
        still atomic on its own)."""
        now = "" if self.clock is None else repr(float(self.clock()))
        pipe = self._redis.pipeline(transaction=False)
        for r in requests:
            keys = [k for s in r.subjects for k in subject_keys(s.name)]
            ttl = "" if r.stream_ttl_s is None else repr(float(r.stream_ttl_s))
            args: list[EncodableT] = [now, *_limit_args(r.subjects), r.rid,
                                      secrets.token_hex(6), ttl]  # fmt: skip
            await self._scripts["admit"](keys=keys, args=args, client=pipe)
        return [_decision(reply) for reply in await self._call(pipe.execute())]

    async def reserve(self, subjects: list[Subject], rid: str, tokens: int) -> Decision:
        """MemoryLimits.reserve, atomically in Redis."""
        return _decision(await self._limiter("reserve", subjects, rid, int(tokens)))

    async def settle(self, subjects: list[Subject], rid: str, tokens: int) -> None:
        """MemoryLimits.settle, atomically in Redis (idempotent)."""
        await self._limiter("settle", subjects, rid, int(tokens))

    async def release(self, subjects: list[Subject], rid: str) -> None:
        """MemoryLimits.release, atomically in Redis (idempotent)."""
        await self._limiter("release", subjects, rid)

    async def snapshot(self, subjects: list[Subject]) -> dict[str, dict[str, int]]:
        """MemoryLimits.snapshot: per subject, what is used now in each window."""
        flat = await self._limiter("snapshot", subjects)
        names = ("requests_last_minute", "tokens_last_minute", "tokens_today", "streams")
        return {s.name: dict(zip(names, map(int, flat[4 * i : 4 * i + 4]), strict=True))
                for i, s in enumerate(subjects)}  # fmt: skip

    async def record(self, records: list[UsageRecord]) -> None:
        """Append finished requests to the stream and add them to the day totals, in one
        MULTI/EXEC."""
        if not records:
            return
        pipe = self._redis.pipeline(transaction=True)
        for r in records:
            # A comprehension, because redis types the field names wider than str.
            fields: dict[FieldT, EncodableT] = {k: v for k, v in r.to_row().items()}
            pipe.xadd(REQUESTS, fields, maxlen=REQUESTS_MAXLEN, approximate=True)
            day = day_label(r.ts)
            totals = usage_key(r.tenant, day)
            pipe.hincrby(totals, f"{r.route}|requests", 1)
            pipe.hincrby(totals, f"{r.route}|errors", int(r.status >= 400))
            pipe.hincrby(totals, f"{r.route}|prompt_tokens", r.prompt_tokens)
            pipe.hincrby(totals, f"{r.route}|completion_tokens", r.completion_tokens)
            pipe.sadd(usage_days_key(r.tenant), day)
        await self._call(pipe.execute())

    async def usage(self, tenant: str, since_day: str) -> list[DayUsage]:
        """Totals per day and route from `since_day` (YYYY-MM-DD) on, by day then route."""
        members = await self._call(self._redis.smembers(usage_days_key(tenant)))
        days = sorted(str(d) for d in members if str(d) >= since_day)
        pipe = self._redis.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(usage_key(tenant, day))
        out: list[DayUsage] = []
        for day, totals in zip(days, await self._call(pipe.execute()), strict=True):
            routes: dict[str, dict[str, int]] = {}
            for name, value in totals.items():
                route, _, field = name.rpartition("|")
                routes.setdefault(route, dict.fromkeys(USAGE_FIELDS, 0))[field] = int(value)
            out += [DayUsage(day, route, **routes[route]) for route in sorted(routes)]
        return out
