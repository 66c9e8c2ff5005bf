"""Exact limits over sliding windows, in memory: the algorithm of record.

Every operation is atomic (one call, no awaits) and takes `now`, so it is tested with a fake
clock. The embedded store runs it inside one Ray actor; redis_limits.py runs the same algorithm
as Lua scripts inside Redis. Windows:
- requests per minute: a log of admitted request times; a request is admitted when fewer than
  `rpm` lie in (now - 60, now]. Never more than `rpm` in any 60 s window.
- tokens per minute: a log of (time, tokens) reservations, settled to actual usage later.
- tokens per day: one counter per UTC day, reservations included.
- concurrent streams: leases that end on release or expire after their ttl (a crashed replica
  cannot hold one forever).
Retry-After is exact: the moment enough of the window's entries leave it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ragcore.tenancy.keys import Limits

MINUTE = 60.0
DAY = 86400.0
STREAM_RETRY_S = 1.0  # a stream ends when it ends: no exact time, so poll


@dataclass(frozen=True)
class Subject:
    """One level whose limits apply to a request: `tenant:NAME` or `key:ID`."""

    name: str
    limits: Limits


@dataclass(frozen=True)
class Decision:
    """The outcome of an admission or reservation, with what the rate-limit headers show:
    `resource` is the limit they describe (the refusing one, else the tightest)."""

    allowed: bool
    reason: str = ""  # requests_per_minute, tokens_per_minute, tokens_per_day, streams, too_large
    retry_after_s: float = 0.0
    resource: str = ""
    limit: int = 0
    remaining: int = 0
    reset_s: float = 0.0

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, rounded up: waiting this long is always enough (a day for a request
        that can never fit, which is answered 422 instead)."""
        if not math.isfinite(self.retry_after_s):
            return str(int(DAY))
        return str(max(1, math.ceil(self.retry_after_s)))


@dataclass
class _Window:
    """One subject's state."""

    requests: list[float] = field(default_factory=list)
    tokens: dict[str, tuple[float, int]] = field(default_factory=dict)  # rid -> (time, n)
    day: int = -1
    day_tokens: int = 0
    day_reserved: dict[str, int] = field(default_factory=dict)
    streams: dict[str, float] = field(default_factory=dict)  # rid -> expiry


def wait_until(expiry: float, now: float) -> float:
    """`expiry - now`, nudged up so that `now + wait >= expiry` holds in floating point: a
    client that waits exactly Retry-After is admitted."""
    wait = expiry - now
    while now + wait < expiry:
        wait = math.nextafter(wait, math.inf)
    return wait


def day_of(now: float) -> int:
    """The UTC day number of `now`."""
    return int(now // DAY)


class MemoryLimits:
    """The limits of all subjects in one process. `day_seed(subject, day)` gives the tokens
    already used that day when a subject is first seen (durable usage survives a restart)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        day_seed: Callable[[str, int], int] | None = None,
    ) -> None:
        self.clock = clock
        self.day_seed = day_seed or (lambda subject, day: 0)
        self._windows: dict[str, _Window] = {}

    def _window(self, name: str, now: float) -> _Window:
        window = self._windows.setdefault(name, _Window())
        # An entry leaves when its expiry t + 60 is reached: the same sum as the waits use,
        # so the two agree to the last bit.
        if window.requests and window.requests[0] + MINUTE <= now:
            window.requests = [t for t in window.requests if t + MINUTE > now]
        for rid, (t, _) in list(window.tokens.items()):
            if t + MINUTE > now:
                break  # insertion order is time order (rids are unique per reservation)
            del window.tokens[rid]
        for rid, expiry in list(window.streams.items()):
            if expiry <= now:
                del window.streams[rid]
        today = day_of(now)
        if window.day != today:
            window.day, window.day_reserved = today, {}
            window.day_tokens = self.day_seed(name, today)
        return window

    def admit(
        self, subjects: list[Subject], rid: str, stream_ttl_s: float | None = None,
        now: float | None = None,
    ) -> Decision:  # fmt: skip
        """Count one request (and hold a stream lease when `stream_ttl_s` is set), or refuse
        it with the exact wait; all subjects or none are charged."""
        now = self.clock() if now is None else now
        windows = [self._window(s.name, now) for s in subjects]
        refusals: list[Decision] = []
        for subject, window in zip(subjects, windows, strict=True):
            refusals += _request_refusals(subject.limits, window, now, stream_ttl_s is not None)
        if refusals:
            return max(refusals, key=lambda d: d.retry_after_s)
        for window in windows:
            window.requests.append(now)
            if stream_ttl_s is not None:
                window.streams[rid] = now + stream_ttl_s
        return _request_headers(subjects, windows, now)

    def reserve(
        self, subjects: list[Subject], rid: str, tokens: int, now: float | None = None
    ) -> Decision:
        """Reserve `tokens` against every subject's minute and day budgets, or refuse. `rid`
        must be unique per reservation (one per request)."""
        now = self.clock() if now is None else now
        windows = [self._window(s.name, now) for s in subjects]
        refusals = [d for s, w in zip(subjects, windows, strict=True)
                    for d in _token_refusals(s.limits, w, tokens, now)]  # fmt: skip
        if refusals:
            return max(refusals, key=lambda d: d.retry_after_s)
        for window in windows:
            window.tokens[rid] = (now, tokens)
            window.day_tokens += tokens
            window.day_reserved[rid] = tokens
        return _token_headers(subjects, windows, now)

    def settle(
        self, subjects: list[Subject], rid: str, tokens: int, now: float | None = None
    ) -> None:
        """Replace reservation `rid` with the tokens actually used (idempotent)."""
        now = self.clock() if now is None else now
        for subject in subjects:
            window = self._window(subject.name, now)
            reserved = window.day_reserved.pop(rid, None)
            if reserved is not None:
                window.day_tokens += tokens - reserved
            if rid in window.tokens:
                window.tokens[rid] = (window.tokens[rid][0], tokens)

    def release(self, subjects: list[Subject], rid: str) -> None:
        """End stream lease `rid` (idempotent)."""
        for subject in subjects:
            window = self._windows.get(subject.name)
            if window is not None:
                window.streams.pop(rid, None)

    def snapshot(self, subjects: list[Subject], now: float | None = None) -> dict[str, dict]:
        """Per subject: what is used now in each window (for GET /v1/usage)."""
        now = self.clock() if now is None else now
        out: dict[str, dict] = {}
        for subject in subjects:
            window = self._window(subject.name, now)
            out[subject.name] = {
                "requests_last_minute": len(window.requests),
                "tokens_last_minute": sum(n for _, n in window.tokens.values()),
                "tokens_today": window.day_tokens,
                "streams": len(window.streams),
            }
        return out


def _request_refusals(limits: Limits, window: _Window, now: float, stream: bool) -> list[Decision]:
    out = []
    if limits.rpm is not None and len(window.requests) >= limits.rpm:
        # The (count - rpm)th oldest request must leave the window first.
        wait = wait_until(window.requests[-limits.rpm] + MINUTE, now)
        out.append(Decision(False, "requests_per_minute", wait, "requests", limits.rpm, 0, wait))
    if stream and limits.max_streams is not None and len(window.streams) >= limits.max_streams:
        out.append(Decision(False, "streams", STREAM_RETRY_S, "streams", limits.max_streams, 0,
                            STREAM_RETRY_S))  # fmt: skip
    return out


def _token_refusals(limits: Limits, window: _Window, tokens: int, now: float) -> list[Decision]:
    out = []
    tpm, tpd = limits.tokens_per_minute, limits.tokens_per_day
    for limit, resource in ((tpm, "tokens_per_minute"), (tpd, "tokens_per_day")):
        if limit is not None and tokens > limit:
            out.append(Decision(False, "too_large", math.inf, resource, limit, 0, math.inf))
    if out:
        return out
    if tpm is not None:
        entries = list(window.tokens.values())
        used = sum(n for _, n in entries)
        if used + tokens > tpm:
            wait = _minute_wait(entries, used + tokens - tpm, now)
            out.append(Decision(False, "tokens_per_minute", wait, "tokens_per_minute", tpm,
                                max(0, tpm - used), wait))  # fmt: skip
    if tpd is not None and window.day_tokens + tokens > tpd:
        wait = wait_until((day_of(now) + 1) * DAY, now)
        out.append(Decision(False, "tokens_per_day", wait, "tokens_per_day", tpd,
                            max(0, tpd - window.day_tokens), wait))  # fmt: skip
    return out


def _minute_wait(entries: list[tuple[float, int]], excess: int, now: float) -> float:
    """How long until reservations worth `excess` tokens have left the minute window."""
    freed = 0
    for t, n in entries:
        freed += n
        if freed >= excess:
            return wait_until(t + MINUTE, now)
    return MINUTE  # unreachable while tokens <= tpm


def _request_headers(subjects: list[Subject], windows: list[_Window], now: float) -> Decision:
    """The tightest request limit after admission, as the headers report it."""
    best: Decision | None = None
    for subject, window in zip(subjects, windows, strict=True):
        rpm = subject.limits.rpm
        if rpm is None:
            continue
        remaining = rpm - len(window.requests)
        # Remaining goes up again when the oldest counted request leaves the window.
        reset = wait_until(window.requests[0] + MINUTE, now)
        if best is None or remaining < best.remaining:
            best = Decision(True, "", 0.0, "requests", rpm, remaining, reset)
    return best or Decision(True)


def _token_headers(subjects: list[Subject], windows: list[_Window], now: float) -> Decision:
    """The tightest token budget after a reservation."""
    best: Decision | None = None
    for subject, window in zip(subjects, windows, strict=True):
        limits = subject.limits
        candidates = []
        if limits.tokens_per_minute is not None:
            entries = list(window.tokens.values())
            used = sum(n for _, n in entries)
            # Remaining goes up when the oldest reservation that holds tokens leaves.
            held = [t for t, n in entries if n > 0]
            reset = wait_until(held[0] + MINUTE, now) if held else 0.0
            candidates.append(("tokens_per_minute", limits.tokens_per_minute,
                               limits.tokens_per_minute - used, reset))  # fmt: skip
        if limits.tokens_per_day is not None:
            candidates.append(("tokens_per_day", limits.tokens_per_day,
                               limits.tokens_per_day - window.day_tokens,
                               (day_of(now) + 1) * DAY - now))  # fmt: skip
        for resource, limit, remaining, reset in candidates:
            if best is None or remaining < best.remaining:
                best = Decision(True, "", 0.0, resource, limit, remaining, reset)
    return best or Decision(True)
