"""The Redis store against a real redis-server: its limiter decides exactly as MemoryLimits (the
algorithm of record) on random operation sequences, keys and usage round-trip, usage survives
a restart, and a store that is down or hung fails each call within its deadline."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import astuple, dataclass
from typing import Any, TypeVar

import pytest
import redis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ragcore.tenancy.keys import ApiKey, Limits, hash_secret, new_key_id, new_secret
from ragcore.tenancy.limiter import DAY, Decision, MemoryLimits, Subject, day_of
from ragcore.tenancy.redis_lua import PREAMBLE
from ragcore.tenancy.redis_store import REQUESTS, RedisKeyAdmin, RedisTenantStore
from ragcore.tenancy.stores import Admission, DayUsage, UsageRecord
from tests.helpers import RedisServer
from utils.errors import StoreUnavailableError

pytestmark = pytest.mark.integration
T = TypeVar("T")

START = 19_000 * DAY + 12 * 3600.0  # noon of a UTC day in 2022


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# --- the limiter, differentially -------------------------------------------------------------


@dataclass
class Clock:
    now: float

    def __call__(self) -> float:
        return self.now


def limits() -> st.SearchStrategy[Limits]:
    """Small limits, so sequences of a few dozen operations hit every refusal."""
    return st.builds(
        Limits,
        rpm=st.none() | st.integers(1, 4),
        tokens_per_minute=st.none() | st.integers(1, 40),
        tokens_per_day=st.none() | st.integers(1, 60),
        max_streams=st.none() | st.integers(1, 2),
    )


TICK = 1 / 1024  # on this grid sums of times are exact: entries land on the window's edge
# A step forward in time: mostly short (so limits are hit), around the minute window's edge,
# sometimes long.
STEP = st.one_of(
    st.just(0.0),
    st.floats(0, 3),
    st.integers(0, 60 * 1024).map(lambda n: n * TICK),
    st.floats(0, 20),
    st.floats(0, 90),
    st.sampled_from([59.999999, 60.0, 60.000001, 3600.0]),
)
# Each kind's arguments; ("midnight", offset) jumps to the next UTC midnight plus offset
# (never backwards).
ARGUMENTS = {
    "admit": st.tuples(st.integers(0, 3), st.none() | st.floats(0.5, 20)),
    # Mostly well under the limits, so budgets fill up; sometimes past them (too large).
    "reserve": st.tuples(st.integers(0, 3), st.integers(0, 12) | st.integers(0, 45)),
    "advance": st.tuples(STEP),
    "settle": st.tuples(st.integers(0, 3), st.integers(0, 99), st.integers(0, 80)),
    "release": st.tuples(st.integers(0, 3), st.integers(0, 99)),
    "snapshot": st.tuples(st.integers(0, 3)),
    "midnight": st.tuples(st.floats(-1.5, 1.5)),
    "wait_retry": st.tuples(),  # wait exactly the last refusal's Retry-After: window edges
}
# Weights by repetition: mostly admissions and reservations, midnight now and then.
KINDS = ["admit"] * 6 + ["reserve"] * 6 + ["advance"] * 3 + ["wait_retry"] * 2 + [
    "settle", "release"] * 2 + ["snapshot", "midnight"]  # fmt: skip
OPERATION = st.sampled_from(KINDS).flatmap(
    lambda kind: ARGUMENTS[kind].map(lambda args: (kind, *args))
)
START_TIME = st.one_of(
    st.floats(START, START + DAY),
    # Near the epoch t + 60 - 60 often differs from t: the window's edge must be the same sum.
    st.floats(0, 100),
    st.integers(0, 86400 * 1024).map(lambda n: START + n * TICK),
    st.floats(START + 12 * 3600 - 90, START + 12 * 3600),  # just before a midnight
)


def pick(subjects: list[Subject], which: int) -> list[Subject]:
    """One of the orders or subsets of one or two subjects."""
    if len(subjects) == 1:
        return subjects
    return [subjects[:1], subjects[1:], subjects, subjects[::-1]][which]


def same(memory: Decision, redis_: Decision) -> bool:
    """Field by field, times within 1e-6 s (they are in fact equal to the bit)."""
    for mine, theirs in zip(astuple(memory), astuple(redis_), strict=True):
        if isinstance(mine, float) and not (mine == theirs or abs(mine - theirs) <= 1e-6):
            return False
        if not isinstance(mine, float) and mine != theirs:
            return False
    return True


async def replay(url: str, subjects: list[Subject], start: float, ops: list[tuple]) -> None:
    """Apply `ops` to both limiters on one fake clock; every answer must match."""
    clock = Clock(start)
    memory = MemoryLimits(clock=clock)
    store = RedisTenantStore(url, timeout_s=5.0, clock=clock)
    reserved: list[str] = []
    streams: list[str] = []
    retry = 0.0
    try:
        for i, (op, *args) in enumerate(ops):
            rid = f"r{i}"
            if op == "advance":
                clock.now += args[0]
            elif op == "wait_retry":
                clock.now += retry if math.isfinite(retry) else 0.0
            elif op == "midnight":
                clock.now = max(clock.now, (day_of(clock.now) + 1) * DAY + args[0])
            elif op in ("admit", "reserve"):
                which, arg = args  # a stream's ttl (or None), or tokens
                chosen = pick(subjects, which)
                if op == "admit":
                    streams += [rid] if arg is not None else []
                    mine = memory.admit(chosen, rid, arg)
                    theirs = await store.admit(chosen, rid, arg)
                else:
                    reserved.append(rid)
                    mine = memory.reserve(chosen, rid, arg)
                    theirs = await store.reserve(chosen, rid, arg)
                assert same(mine, theirs), (i, op, mine, theirs)
                retry = mine.retry_after_s or retry
                event(f"{op} refused: {mine.reason}" if not mine.allowed else f"{op} allowed")
            elif op == "settle":
                which, n, tokens = args
                rid = reserved[n % len(reserved)] if reserved else "never"
                memory.settle(pick(subjects, which), rid, tokens)
                await store.settle(pick(subjects, which), rid, tokens)
            elif op == "release":
                which, n = args
                rid = streams[n % len(streams)] if streams else "never"
                memory.release(pick(subjects, which), rid)
                await store.release(pick(subjects, which), rid)
            elif op == "snapshot":
                chosen = pick(subjects, args[0])
                assert memory.snapshot(chosen) == await store.snapshot(chosen), (i, op)
        # The state matches in the end, not only the decisions on the way.
        assert memory.snapshot(subjects) == await store.snapshot(subjects)
    finally:
        await store.close()


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    subject_limits=st.lists(limits(), min_size=1, max_size=2),
    start=START_TIME,
    ops=st.lists(OPERATION, min_size=20, max_size=80),
)
def test_redis_limiter_decides_as_memory_limits(
    redis_server: RedisServer, subject_limits: list[Limits], start: float, ops: list[tuple]
) -> None:
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    names = ["tenant:acme", "key:key_0a1b2c3d4e5f"]
    subjects = [Subject(n, lim) for n, lim in zip(names, subject_limits, strict=False)]
    run(replay(redis_server.url, subjects, start, ops))


def test_retry_after_is_nudged_as_memory_limits_does(redis_server: RedisServer) -> None:
    """At these times `now + (t + 60 - now)` falls short of `t + 60` in floating point: both
    limiters nudge the wait up one ulp, so waiting exactly Retry-After is admitted."""
    t, now = 2.9040787574867943, 15.983887067595862
    assert now + (t + 60 - now) < t + 60  # the case this test is about
    subjects = [Subject("tenant:t", Limits(rpm=1))]
    clock = Clock(t)
    memory = MemoryLimits(clock=clock)

    async def both() -> list[Decision]:
        store = RedisTenantStore(redis_server.url, clock=clock)
        try:
            out = []
            for rid in ("a", "b", "c"):
                out += [memory.admit(subjects, rid, None), await store.admit(subjects, rid, None)]
                clock.now = now if rid == "a" else clock.now + out[-1].retry_after_s
            return out
        finally:
            await store.close()

    first, first_r, refused, refused_r, retried, retried_r = run(both())
    assert (first, refused, retried) == (first_r, refused_r, retried_r)  # bit for bit
    assert refused.retry_after_s > t + 60 - now and retried.allowed


def test_admit_many_decides_each_request_in_order_in_one_round_trip(
    redis_server: RedisServer,
) -> None:
    subjects = [Subject("tenant:t", Limits(rpm=3, max_streams=1))]
    clock = Clock(1_000_000.0)
    memory = MemoryLimits(clock=clock)
    batch = [Admission(subjects, f"r{i}", 30.0 if i < 2 else None) for i in range(5)]

    async def batched() -> list[Decision]:
        store = RedisTenantStore(redis_server.url, clock=clock)
        try:
            return await store.admit_many(batch)
        finally:
            await store.close()

    expected = [memory.admit(a.subjects, a.rid, a.stream_ttl_s) for a in batch]
    got = run(batched())
    assert got == expected
    assert [d.reason for d in got] == ["", "streams", "", "", "requests_per_minute"]


def test_window_edge_is_the_same_float_sum(redis_server: RedisServer) -> None:
    """At t + 60 an entry from t has left the window, though here (t + 60) - 60 < t: the edge
    is the sum t + 60, as in MemoryLimits, not a subtraction from now."""
    t = 2.54458609934608
    now = t + 60
    assert now - 60 < t  # the case this test is about
    subjects = [Subject("tenant:t", Limits(rpm=1, tokens_per_minute=5))]
    clock = Clock(t)
    memory = MemoryLimits(clock=clock)

    async def both() -> list[Decision]:
        store = RedisTenantStore(redis_server.url, clock=clock)
        try:
            out = []
            for at, rid in ((t, "a"), (now, "b")):
                clock.now = at
                out += [memory.admit(subjects, rid, None), await store.admit(subjects, rid, None)]
                out += [memory.reserve(subjects, rid, 5), await store.reserve(subjects, rid, 5)]
            return out
        finally:
            await store.close()

    decisions = run(both())
    assert decisions[0::2] == decisions[1::2] and all(d.allowed for d in decisions)


def test_lua_next_up_is_nextafter(redis_server: RedisServer) -> None:
    """The scripts' nextafter toward infinity (Lua 5.1 has none), on powers of two, signs,
    subnormals and ordinary values."""
    values = [0.0, 5e-324, 2.2e-308, 0.5, -0.5, 1.0, -1.0, -2.0, 60.0, 2.9, -3.3, 46.92,
              START + 0.1, 2.0**31, -(2.0**-1022)]  # fmt: skip
    with redis.Redis.from_url(redis_server.url, decode_responses=True) as client:
        # No subjects: the preamble's ARGV[2] is then the first argument of the body.
        next_up = client.register_script(PREAMBLE + "return num(next_up(tonumber(ARGV[2])))")
        got = [float(next_up(args=["", repr(v)])) for v in values]
    assert got == [math.nextafter(v, math.inf) for v in values]


def test_infinity_and_the_server_clock(redis_server: RedisServer) -> None:
    """Infinity (too large) crosses Lua as "inf"; without a clock the scripts read TIME."""
    tight = [Subject("tenant:t", Limits(rpm=1, tokens_per_minute=10, tokens_per_day=20))]

    async def scenario() -> None:
        store = RedisTenantStore(redis_server.url, clock=Clock(START))
        try:
            too_large = await store.reserve(tight, "a", 11)
            assert (too_large.reason, too_large.retry_after_s, too_large.reset_s) == (
                "too_large", math.inf, math.inf)  # fmt: skip
            assert (await store.reserve(tight, "b", 10)).remaining == 0
        finally:
            await store.close()
        live = RedisTenantStore(redis_server.url)  # the server's TIME
        try:
            allowed = await live.admit(tight, "c", None)
            refused = await live.admit(tight, "d", None)
        finally:
            await live.close()
        assert allowed.allowed and allowed.remaining == 0 and 59 < allowed.reset_s <= 60
        assert not refused.allowed and refused.reason == "requests_per_minute"
        assert 59 < refused.retry_after_s <= 60

    run(scenario())


# --- keys -----------------------------------------------------------------------------------


def new_key(tenant: str, **fields: Any) -> tuple[str, ApiKey]:
    secret = new_secret()
    return secret, ApiKey(new_key_id(), hash_secret(secret), tenant, **fields)


def test_keys_and_tenant_limits_round_trip(redis_server: RedisServer) -> None:
    admin = RedisKeyAdmin(redis_server.url)
    secret, key = new_key("acme", name="ci", collections=("ray",), limits=Limits(rpm=5),
                          created_at=1.0, expires_at=2e9)  # fmt: skip
    _, other = new_key("globex", created_at=2.0)
    _, later = new_key("acme", created_at=3.0)
    try:
        for k in (key, other, later):
            admin.add_key(k)
        with pytest.raises(ValueError):
            admin.add_key(key)
        assert admin.get_key(key.key_id) == key
        assert admin.find_key(hash_secret(secret)) == key
        assert admin.get_key("key_missing") is None and admin.find_key("0" * 64) is None
        assert admin.list_keys() == [key, other, later]
        assert admin.list_keys("acme") == [key, later]
        revoked = key.with_times(revoked_at=1.5)
        admin.update_key(revoked)
        assert admin.get_key(key.key_id) == revoked
        assert admin.find_key(key.key_hash) == revoked
        admin.update_key(ApiKey("key_missing", "f" * 64, "acme"))  # not stored: ignored
        assert admin.get_key("key_missing") is None

        assert admin.tenant_limits("acme") is None
        admin.set_tenant_limits("acme", Limits(rpm=60, tokens_per_day=10_000))
        assert admin.tenant_limits("acme") == Limits(rpm=60, tokens_per_day=10_000)

        async def lookups() -> list[Any]:
            store = RedisTenantStore(redis_server.url)
            try:
                return [await store.lookup(h) for h in (key.key_hash, other.key_hash, "0" * 64)]
            finally:
                await store.close()

        assert run(lookups()) == [(revoked, Limits(rpm=60, tokens_per_day=10_000)),
                                  (other, None), None]  # fmt: skip
    finally:
        admin.close()


# --- usage ----------------------------------------------------------------------------------


def usage_record(ts: float, tenant: str, route: str, status: int, prompt: int) -> UsageRecord:
    return UsageRecord(ts, tenant, "key_1", route, "ray", status, prompt, 5, 12.5, "req-1")


@pytest.mark.parametrize("redis_server", [{"appendonly": True}], indirect=True)
def test_usage_totals_survive_a_restart(redis_server: RedisServer) -> None:
    day1, day2 = START, START + DAY  # 2022-01-08 and 2022-01-09
    records = [
        usage_record(day1, "acme", "/v1/ask", 200, 100),
        usage_record(day1 + 5, "acme", "/v1/ask", 429, 0),
        usage_record(day1 + 9, "acme", "/v1/search", 200, 0),
        usage_record(day2, "acme", "/v1/ask", 500, 30),
        usage_record(day2, "globex", "/v1/ask", 200, 7),
    ]
    expected = [
        DayUsage("2022-01-08", "/v1/ask", 2, 1, 100, 10),
        DayUsage("2022-01-08", "/v1/search", 1, 0, 0, 5),
        DayUsage("2022-01-09", "/v1/ask", 1, 1, 30, 5),
    ]

    async def usage(since: str, tenant: str = "acme", write: bool = False) -> Any:
        store = RedisTenantStore(redis_server.url)
        try:
            if write:
                await store.record(records[:2])
                await store.record(records[2:])
            return await store.usage(tenant, since)
        finally:
            await store.close()

    assert run(usage("2022-01-01", write=True)) == expected
    assert run(usage("2022-01-09")) == expected[2:]
    assert run(usage("2022-01-10")) == []
    assert run(usage("2022-01-01", "globex")) == [DayUsage("2022-01-09", "/v1/ask", 1, 0, 7, 5)]
    redis_server.restart()
    assert run(usage("2022-01-01")) == expected
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.xlen(REQUESTS) == len(records)


# --- a store that is down -------------------------------------------------------------------

TIMEOUT_S = 0.5
SUBJECTS = [Subject("tenant:acme", Limits(rpm=10, tokens_per_minute=100, max_streams=2))]


def every_operation(store: RedisTenantStore) -> list[Callable[[], Awaitable[Any]]]:
    return [
        lambda: store.lookup("0" * 64),
        lambda: store.admit(SUBJECTS, "r", 30.0),
        lambda: store.reserve(SUBJECTS, "r", 10),
        lambda: store.settle(SUBJECTS, "r", 5),
        lambda: store.release(SUBJECTS, "r"),
        lambda: store.snapshot(SUBJECTS),
        lambda: store.record([usage_record(START, "acme", "/v1/ask", 200, 1)]),
        lambda: store.usage("acme", "2022-01-01"),
    ]


async def each_fails_promptly(store: RedisTenantStore) -> None:
    for operation in every_operation(store):
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError) as raised:
            await operation()
        assert isinstance(raised.value.__cause__, redis.ConnectionError | redis.TimeoutError
                          | TimeoutError)  # fmt: skip
        # The deadline, plus slack for a loaded two-core machine.
        assert time.monotonic() - started < TIMEOUT_S + 1.0


def test_each_call_fails_promptly_when_redis_is_stopped_or_hung(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> None:
        store = RedisTenantStore(redis_server.url, timeout_s=TIMEOUT_S)
        try:
            for operation in every_operation(store):  # warm: pooled connections exist
                await operation()
            redis_server.pause()  # hung
            try:
                await each_fails_promptly(store)
            finally:
                redis_server.resume()
            redis_server.stop()  # down: connections refused
            await each_fails_promptly(store)
            redis_server.start()  # back: the next call reconnects
            assert await store.snapshot(SUBJECTS)
        finally:
            await store.close()

    run(scenario())
