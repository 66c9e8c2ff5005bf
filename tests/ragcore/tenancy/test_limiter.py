"""MemoryLimits, the limiter of record: checked against by-definition models of each window.

Times lie on a grid of 1/1024 s (offset by a realistic epoch), where the limiter's float
arithmetic is exact, so "refused at now + r - 1e-6 and admitted at now + r" can be asserted
exactly; off the grid, a test checks that waiting exactly Retry-After is always enough.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragcore.tenancy.keys import Limits
from ragcore.tenancy.limiter import DAY, MINUTE, STREAM_RETRY_S, Decision, MemoryLimits, Subject

TICK = 1 / 1024  # a time grid on which sums and differences of times are exact floats
EPS = 1e-6
START = 19_000 * DAY  # a UTC midnight in 2022: the first day of every sequence
DETERMINISTIC = settings(derandomize=True, deadline=None, max_examples=300)


def limiter(day_seed: Callable[[str, int], int] | None = None) -> MemoryLimits:
    """A limiter whose clock must never be read: every call here passes `now`."""

    def no_clock() -> float:
        raise AssertionError("the tests pass `now` explicitly")

    return MemoryLimits(clock=no_clock, day_seed=day_seed)


def midnight_after(now: float) -> float:
    return (now // DAY + 1) * DAY


def ticks(max_gap_s: float) -> st.SearchStrategy[int]:
    """A gap between two events in ticks: often none (ties), often short, sometimes long."""
    return st.one_of(st.just(0), st.integers(1, 2048), st.integers(1, int(max_gap_s / TICK)))


def times_from(gaps: list[int], start: float = START) -> list[float]:
    return [start + n * TICK for n in accumulate(gaps)]


def arrival_times(max_gap_s: float = 30.0, max_size: int = 40) -> st.SearchStrategy[list[float]]:
    """Sorted arrival times over a few minutes, ties included."""
    return st.lists(ticks(max_gap_s), min_size=1, max_size=max_size).map(times_from)


def assert_retry_after_is_exact(
    limits: MemoryLimits, attempt: Callable[[MemoryLimits, float], Decision], now: float,
    refusal: Decision,
) -> None:  # fmt: skip
    """The same request, with nothing else happening, is refused until now + r, then admitted."""
    wait = refusal.retry_after_s
    assert 0 < wait < math.inf
    later = copy.deepcopy(limits)
    assert not attempt(later, now + wait - EPS).allowed  # a refusal charges nothing: reuse it
    assert attempt(later, now + wait).allowed


def admit_again(subjects: list[Subject]) -> Callable[[MemoryLimits, float], Decision]:
    """The refused request, tried again at a given time."""
    return lambda limits, now: limits.admit(subjects, "again", now=now)


def reserve_again(
    subjects: list[Subject], tokens: int
) -> Callable[[MemoryLimits, float], Decision]:
    """The refused reservation, tried again at a given time."""
    return lambda limits, now: limits.reserve(subjects, "again", tokens, now=now)


# --- models: each window as its definition states it ---------------------------------------


@dataclass
class RequestLog:
    """One subject's admitted request times: at most `rpm` in any (t - 60, t]."""

    rpm: int | None
    times: list[float] = field(default_factory=list)

    def count(self, now: float) -> int:
        return sum(1 for t in self.times if now - MINUTE < t <= now)

    def has_room(self, now: float) -> bool:
        return self.rpm is None or self.count(now) < self.rpm

    def wait(self, now: float) -> float:
        """The earliest moment (from now) when one more request fits."""
        moments = sorted(t + MINUTE for t in self.times if t > now - MINUTE)
        return next(s for s in [now, *moments] if self.has_room(s)) - now


@dataclass
class TokenLedger:
    """One subject's reservations, as settled so far, and its per-day totals."""

    limits: Limits
    minute: dict[str, tuple[float, int]] = field(default_factory=dict)  # rid -> (time, n)
    days: dict[int, int] = field(default_factory=dict)  # day number -> tokens
    unsettled: dict[str, tuple[int, int]] = field(default_factory=dict)  # rid -> (day, n)

    def used(self, now: float) -> int:
        return sum(n for t, n in self.minute.values() if now - MINUTE < t <= now)

    def today(self, now: float) -> int:
        return self.days.get(int(now // DAY), 0)

    def too_large(self, tokens: int) -> bool:
        limits = (self.limits.tokens_per_minute, self.limits.tokens_per_day)
        return any(limit is not None and tokens > limit for limit in limits)

    def fits(self, tokens: int, now: float) -> bool:
        tpm, tpd = self.limits.tokens_per_minute, self.limits.tokens_per_day
        return (tpm is None or self.used(now) + tokens <= tpm) and (
            tpd is None or self.today(now) + tokens <= tpd
        )

    def wait(self, tokens: int, now: float) -> float:
        """The earliest moment (from now) when `tokens` fit: an entry leaves or the day ends."""
        moments = sorted({t + MINUTE for t, _ in self.minute.values() if t > now - MINUTE})
        moments.append(midnight_after(now))
        return next(s for s in [now, *moments] if self.fits(tokens, s)) - now

    def reserve(self, rid: str, tokens: int, now: float) -> None:
        self.minute[rid] = (now, tokens)
        self.days[int(now // DAY)] = self.today(now) + tokens
        self.unsettled[rid] = (int(now // DAY), tokens)

    def settle(self, rid: str, tokens: int, now: float) -> None:
        if rid in self.minute:
            self.minute[rid] = (self.minute[rid][0], tokens)
        if rid in self.unsettled:
            day, reserved = self.unsettled.pop(rid)
            if day == int(now // DAY):  # a reservation of an earlier day no longer counts
                self.days[day] += tokens - reserved

    def header_candidates(self, now: float) -> list[tuple[str, int, int, float]]:
        """(resource, limit, remaining, reset) of each token limit, just after an admission."""
        out = []
        if (tpm := self.limits.tokens_per_minute) is not None:
            # Remaining goes up when the oldest reservation that still holds tokens leaves.
            held = [t for t, n in self.minute.values() if t > now - MINUTE and n > 0]
            reset = min(held) + MINUTE - now if held else 0.0
            out.append(("tokens_per_minute", tpm, tpm - self.used(now), reset))
        if (tpd := self.limits.tokens_per_day) is not None:
            out.append(("tokens_per_day", tpd, tpd - self.today(now), midnight_after(now) - now))
        return out


# --- 1-3. requests per minute: never more than rpm, exact Retry-After, true headers ---------


@DETERMINISTIC
@given(rpm=st.integers(1, 6), times=arrival_times())
def test_admitted_requests_never_exceed_rpm_in_any_sixty_second_window(
    rpm: int, times: list[float]
) -> None:
    limits, subjects = limiter(), [Subject("key:k", Limits(rpm=rpm))]
    admitted = [now for i, now in enumerate(times)
                if limits.admit(subjects, f"r{i}", now=now).allowed]  # fmt: skip
    # The busiest half-open window (t - 60, t] ends at an admitted time.
    for end in admitted:
        assert sum(1 for t in admitted if end - MINUTE < t <= end) <= rpm
    # And nothing is refused that would have fitted: the limiter is exact, not conservative.
    log = RequestLog(rpm)
    for now in times:
        if log.has_room(now):
            log.times.append(now)
    assert log.times == admitted


@DETERMINISTIC
@given(rpm=st.integers(1, 5), times=arrival_times(max_gap_s=20.0))
def test_requests_per_minute_retry_after_is_the_exact_moment_a_request_fits(
    rpm: int, times: list[float]
) -> None:
    limits, subjects = limiter(), [Subject("key:k", Limits(rpm=rpm))]
    log = RequestLog(rpm)
    for i, now in enumerate(times):
        decision = limits.admit(subjects, f"r{i}", now=now)
        if decision.allowed:
            log.times.append(now)
            continue
        assert decision.reason == "requests_per_minute"
        assert (decision.resource, decision.limit, decision.remaining) == ("requests", rpm, 0)
        assert decision.retry_after_s == log.wait(now) == decision.reset_s
        assert_retry_after_is_exact(limits, admit_again(subjects), now, decision)


@DETERMINISTIC
@given(rpm=st.integers(1, 6), times=arrival_times())
def test_request_headers_count_the_window_and_reset_when_the_oldest_request_leaves(
    rpm: int, times: list[float]
) -> None:
    limits, subjects = limiter(), [Subject("key:k", Limits(rpm=rpm))]
    log = RequestLog(rpm)
    previous: tuple[float, int] | None = None  # (time, remaining) of the last admission
    for i, now in enumerate(times):
        decision = limits.admit(subjects, f"r{i}", now=now)
        if not decision.allowed:
            continue
        log.times.append(now)
        counted = log.count(now)
        assert (decision.resource, decision.limit) == ("requests", rpm)
        assert decision.remaining == rpm - counted
        if previous is not None:
            before, remaining_before = previous
            if not [t for t in log.times if before - MINUTE < t <= now - MINUTE]:
                assert decision.remaining == remaining_before - 1  # nobody left: one fewer
        previous = (now, decision.remaining)
        # reset_s: remaining goes up exactly then, and not a moment before.
        reset = decision.reset_s
        assert reset > 0
        probe = copy.deepcopy(limits)
        seen = probe.snapshot(subjects, now=now + reset - EPS)["key:k"]["requests_last_minute"]
        assert seen == counted
        seen = probe.snapshot(subjects, now=now + reset)["key:k"]["requests_last_minute"]
        assert seen < counted


def test_remaining_goes_down_by_one_per_admission_and_refuses_at_zero() -> None:
    limits, subjects = limiter(), [Subject("key:k", Limits(rpm=3))]
    decisions = [limits.admit(subjects, f"r{i}", now=START + i) for i in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert [d.reset_s for d in decisions[:3]] == [60.0, 59.0, 58.0]
    assert decisions[3].retry_after_s == 57.0  # START + 0 leaves at START + 60
    assert limits.admit(subjects, "r4", now=START + 60).allowed


def test_a_request_exactly_sixty_seconds_later_is_outside_the_window() -> None:
    limits, subjects = limiter(), [Subject("key:k", Limits(rpm=1))]
    assert limits.admit(subjects, "a", now=START).allowed
    assert not limits.admit(subjects, "b", now=START + MINUTE - EPS).allowed
    assert limits.admit(subjects, "c", now=START + MINUTE).allowed


def test_lowering_rpm_below_the_count_waits_until_enough_requests_leave() -> None:
    limits = limiter()
    loose, tight = [Subject("key:k", Limits(rpm=10))], [Subject("key:k", Limits(rpm=2))]
    for i in range(5):
        assert limits.admit(loose, f"r{i}", now=START + i).allowed
    refused = limits.admit(tight, "x", now=START + 10)
    assert refused.retry_after_s == 3 + MINUTE - 10  # then only START + 4 is left: 1 < 2
    assert_retry_after_is_exact(limits, admit_again(tight), START + 10, refused)


def test_retry_after_is_exact_for_arbitrary_float_times() -> None:
    limits, subjects = limiter(), [Subject("key:k", Limits(rpm=1))]
    assert limits.admit(subjects, "a", now=0.3).allowed
    refused = limits.admit(subjects, "b", now=1.0)
    assert not refused.allowed
    again = limits.admit(subjects, "b", now=1.0 + refused.retry_after_s)
    assert again.allowed, again


# --- 1-3. tokens per minute and per day ------------------------------------------------------


@dataclass(frozen=True)
class Reserve:
    gap: int
    key: int
    tokens: int


@dataclass(frozen=True)
class Settle:
    gap: int
    target: int  # which earlier reservation attempt (admitted, refused or already settled)
    actual: int


def token_ops(max_gap_s: float, max_tokens: int) -> st.SearchStrategy[list[Reserve | Settle]]:
    reserve = st.builds(Reserve, ticks(max_gap_s), st.integers(0, 1), st.integers(0, max_tokens))
    settle = st.builds(Settle, ticks(max_gap_s), st.integers(0, 1000), st.integers(0, max_tokens))
    return st.lists(st.one_of(reserve, reserve, settle), min_size=1, max_size=40)


@dataclass
class TokenRun:
    """Plays reservations and settles against MemoryLimits and the ledgers side by side, and
    checks after every step that the limiter matches the ledgers exactly."""

    tenant: Limits
    keys: tuple[Limits, Limits]
    settle_down_only: bool = False
    check_retry: bool = True
    limits: MemoryLimits = field(default_factory=limiter)
    ledgers: dict[str, TokenLedger] = field(default_factory=dict)
    subjects: dict[str, Subject] = field(default_factory=dict)
    attempts: list[tuple[str, int, list[Subject]]] = field(default_factory=list)
    settled: set[str] = field(default_factory=set)
    admissions: list[tuple[float, dict[str, int], int, list[Subject]]] = field(
        default_factory=list
    )  # (time, each subject's window total before, tokens, subjects)

    def __post_init__(self) -> None:
        named = [("tenant:t", self.tenant), ("key:a", self.keys[0]), ("key:b", self.keys[1])]
        self.ledgers = {name: TokenLedger(lim) for name, lim in named}
        self.subjects = {name: Subject(name, lim) for name, lim in named}

    def play(self, ops: list[Reserve | Settle]) -> None:
        now = START
        for op in ops:
            now += op.gap * TICK
            if isinstance(op, Reserve):
                self.reserve(op, now)
            else:
                self.settle(op, now)
            self.check_snapshot(now)

    def reserve(self, op: Reserve, now: float) -> None:
        rid = f"r{len(self.attempts)}"
        subjects = [self.subjects["tenant:t"], self.subjects[("key:a", "key:b")[op.key]]]
        self.attempts.append((rid, op.tokens, subjects))
        ledgers = [self.ledgers[s.name] for s in subjects]
        decision = self.limits.reserve(subjects, rid, op.tokens, now=now)
        if any(ledger.too_large(op.tokens) for ledger in ledgers):
            assert (decision.allowed, decision.reason) == (False, "too_large")
            assert decision.retry_after_s == math.inf
            return
        assert decision.allowed == all(ledger.fits(op.tokens, now) for ledger in ledgers)
        if not decision.allowed:
            assert decision.reason in ("tokens_per_minute", "tokens_per_day")
            assert decision.retry_after_s == max(ledger.wait(op.tokens, now) for ledger in ledgers)
            if self.check_retry:
                attempt = reserve_again(subjects, op.tokens)
                assert_retry_after_is_exact(self.limits, attempt, now, decision)
            return
        before = {s.name: self.ledgers[s.name].used(now) for s in subjects}
        days_before = {s.name: self.ledgers[s.name].today(now) for s in subjects}
        self.admissions.append((now, before, op.tokens, subjects))
        for subject, ledger in zip(subjects, ledgers, strict=True):
            # The invariant the limiter gives, whatever settles did before: at admission the
            # window's current total plus the new reservation is within each limit.
            tpm, tpd = subject.limits.tokens_per_minute, subject.limits.tokens_per_day
            assert tpm is None or before[subject.name] + op.tokens <= tpm
            assert tpd is None or days_before[subject.name] + op.tokens <= tpd
            ledger.reserve(rid, op.tokens, now)
        self.check_headers(decision, ledgers, now)

    def check_headers(self, decision: Decision, ledgers: list[TokenLedger], now: float) -> None:
        """The tightest budget (least remaining) of all subjects is what the headers show."""
        candidates = [c for ledger in ledgers for c in ledger.header_candidates(now)]
        if not candidates:
            assert decision == Decision(True)
            return
        least = min(remaining for _, _, remaining, _ in candidates)
        assert decision.remaining == least >= 0
        shown = (decision.resource, decision.limit, decision.remaining, decision.reset_s)
        assert shown in candidates

    def settle(self, op: Settle, now: float) -> None:
        if not self.attempts:
            return
        rid, reserved, subjects = self.attempts[op.target % len(self.attempts)]
        if self.settle_down_only and rid in self.settled:
            return  # the service settles a reservation once; a second, higher one is not "down"
        self.settled.add(rid)
        actual = min(op.actual, reserved) if self.settle_down_only else op.actual
        self.limits.settle(subjects, rid, actual, now=now)
        admitted = any(rid in self.ledgers[s.name].unsettled or rid in self.ledgers[s.name].minute
                       for s in subjects)  # fmt: skip
        if admitted:
            for subject in subjects:
                self.ledgers[subject.name].settle(rid, actual, now)

    def check_snapshot(self, now: float) -> None:
        snapshot = self.limits.snapshot(list(self.subjects.values()), now=now)
        for name, ledger in self.ledgers.items():
            assert snapshot[name]["tokens_last_minute"] == ledger.used(now)
            assert snapshot[name]["tokens_today"] == ledger.today(now)
            tpd = ledger.limits.tokens_per_day
            if self.settle_down_only and tpd is not None:
                assert ledger.today(now) <= tpd


def optional_limit(low: int, high: int) -> st.SearchStrategy[int | None]:
    return st.one_of(st.none(), st.integers(low, high))


def token_limits(tpm: tuple[int, int], tpd: tuple[int, int]) -> st.SearchStrategy[Limits]:
    return st.builds(Limits, tokens_per_minute=optional_limit(*tpm),
                     tokens_per_day=optional_limit(*tpd))  # fmt: skip


@DETERMINISTIC
@given(
    tenant=token_limits((8, 40), (30, 150)),
    keys=st.tuples(token_limits((4, 20), (20, 80)), token_limits((4, 20), (20, 80))),
    ops=token_ops(max_gap_s=20.0, max_tokens=12),
)
def test_tokens_per_minute_never_exceed_the_limit_in_any_window_when_settles_only_lower(
    tenant: Limits, keys: tuple[Limits, Limits], ops: list[Reserve | Settle]
) -> None:
    run = TokenRun(tenant, keys, settle_down_only=True)
    run.play(ops)
    # Final (settled) amounts of the reservations admitted, per subject: the busiest window
    # (t - 60, t] ends at a reservation time.
    for name, ledger in run.ledgers.items():
        tpm = ledger.limits.tokens_per_minute
        entries = [(t, ledger.minute[rid][1]) for rid, (t, _) in ledger.minute.items()]
        for end, _ in entries:
            window = sum(n for t, n in entries if end - MINUTE < t <= end)
            assert tpm is None or window <= tpm, (name, end, window)


@DETERMINISTIC
@given(
    tenant=token_limits((8, 40), (30, 150)),
    keys=st.tuples(token_limits((4, 20), (20, 80)), token_limits((4, 20), (20, 80))),
    ops=token_ops(max_gap_s=20.0, max_tokens=12),
)
def test_token_limits_admit_exactly_what_fits_even_after_settles_above_the_reservation(
    tenant: Limits, keys: tuple[Limits, Limits], ops: list[Reserve | Settle]
) -> None:
    # Settling above the reservation can push a window past the limit after the fact (actual
    # usage is what it is); what always holds is checked at each admission inside TokenRun:
    # current window total + new reservation <= limit, for the minute and for the day.
    TokenRun(tenant, keys).play(ops)


@settings(derandomize=True, deadline=None, max_examples=100)
@given(
    tenant=token_limits((8, 40), (20, 60)),
    keys=st.tuples(token_limits((4, 20), (10, 40)), token_limits((4, 20), (10, 40))),
    ops=token_ops(max_gap_s=6 * 3600.0, max_tokens=12),
    down_only=st.booleans(),
)
def test_tokens_per_day_count_reservations_and_settles_and_reset_at_utc_midnight(
    tenant: Limits, keys: tuple[Limits, Limits], ops: list[Reserve | Settle], down_only: bool
) -> None:
    # With down-only settles TokenRun also checks tokens_today <= tokens_per_day throughout.
    TokenRun(tenant, keys, settle_down_only=down_only).play(ops)


def test_settling_above_the_reservation_counts_the_actual_usage() -> None:
    limits, subjects = limiter(), [Subject("key:k", Limits(tokens_per_minute=10))]
    assert limits.reserve(subjects, "a", 10, now=START).allowed
    limits.settle(subjects, "a", 15, now=START + 1)
    assert limits.snapshot(subjects, now=START + 1)["key:k"]["tokens_last_minute"] == 15
    refused = limits.reserve(subjects, "b", 1, now=START + 2)
    assert (refused.allowed, refused.remaining, refused.retry_after_s) == (False, 0, 58.0)


def test_a_token_refusal_waits_for_just_enough_reservations_to_leave() -> None:
    limits, subjects = limiter(), [Subject("key:k", Limits(tokens_per_minute=10))]
    for i, n in enumerate([3, 3, 4]):  # full at START + 0, 1, 2
        assert limits.reserve(subjects, f"r{i}", n, now=START + i).allowed
    refused = limits.reserve(subjects, "x", 5, now=START + 10)  # 3 + 3 must leave
    assert (refused.reason, refused.remaining, refused.retry_after_s) == ("tokens_per_minute",
                                                                          0, 51.0)  # fmt: skip
    assert_retry_after_is_exact(limits, reserve_again(subjects, 5), START + 10, refused)


@settings(derandomize=True, deadline=None, max_examples=100)
@given(
    day=st.integers(1, 30_000),
    offset=st.floats(0.0, DAY, exclude_max=True),
    tpd=st.integers(1, 1000),
)
def test_tokens_per_day_retry_after_is_exact_at_midnight_for_any_float_time(
    day: int, offset: float, tpd: int
) -> None:
    now = day * DAY + offset
    if now // DAY != day:  # the offset rounded up to the next midnight
        return
    limits, subjects = limiter(), [Subject("key:k", Limits(tokens_per_day=tpd))]
    assert limits.reserve(subjects, "all", tpd, now=now).allowed
    refused = limits.reserve(subjects, "one", 1, now=now)
    assert (refused.reason, refused.remaining) == ("tokens_per_day", 0)
    assert refused.retry_after_s == (day + 1) * DAY - now == refused.reset_s
    assert_retry_after_is_exact(limits, reserve_again(subjects, 1), now, refused)


def test_token_headers_reset_when_the_oldest_reservation_leaves() -> None:
    limits, subjects = limiter(), [Subject("key:k", Limits(tokens_per_minute=10))]
    assert limits.reserve(subjects, "a", 4, now=START).reset_s == 60.0
    second = limits.reserve(subjects, "b", 4, now=START + 10)
    assert (second.remaining, second.reset_s) == (2, 50.0)
    after = limits.reserve(subjects, "c", 1, now=START + 60)
    assert after.remaining == 10 - 4 - 1  # "a" left at reset: remaining went up by 4


def test_token_reset_is_when_remaining_goes_up_even_after_a_settle_to_zero() -> None:
    limits, subjects = limiter(), [Subject("key:k", Limits(tokens_per_minute=10))]
    assert limits.reserve(subjects, "a", 5, now=START).allowed
    limits.settle(subjects, "a", 0, now=START + 1)  # the request failed: it used nothing
    decision = limits.reserve(subjects, "b", 5, now=START + 10)
    assert decision.remaining == 5
    at_reset = limits.snapshot(subjects, now=START + 10 + decision.reset_s)
    assert 10 - at_reset["key:k"]["tokens_last_minute"] > decision.remaining


# --- 2. the Retry-After header ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("wait", "header"),
    [(1e-6, "1"), (0.25, "1"), (1.0, "1"), (1.5, "2"), (57.0, "57"), (59.4, "60"),
     (86399.2, "86400")],
)  # fmt: skip
def test_retry_after_header_rounds_up_to_whole_seconds_of_at_least_one(
    wait: float, header: str
) -> None:
    assert Decision(False, "requests_per_minute", wait).retry_after_header == header


@settings(derandomize=True, deadline=None, max_examples=300)
@given(wait=st.floats(1e-3, 2 * DAY))
def test_retry_after_header_is_the_ceiling_of_the_wait(wait: float) -> None:
    seconds = int(Decision(False, "tokens_per_day", wait).retry_after_header)
    assert seconds >= 1
    assert seconds == max(1, math.ceil(wait)) or (seconds == math.floor(wait) and
                                                  wait - seconds <= 1e-9)  # fmt: skip


# --- 4. several subjects: all or nothing, the tightest one shows -----------------------------


@DETERMINISTIC
@given(
    tenant_rpm=optional_limit(1, 6),
    key_rpms=st.tuples(optional_limit(1, 4), optional_limit(1, 4)),
    requests=st.lists(st.tuples(ticks(20.0), st.integers(0, 1)), min_size=1, max_size=40),
)
def test_a_request_is_charged_to_every_subject_or_to_none(
    tenant_rpm: int | None, key_rpms: tuple[int | None, int | None],
    requests: list[tuple[int, int]],
) -> None:  # fmt: skip
    limits = limiter()
    tenant = Subject("tenant:t", Limits(rpm=tenant_rpm))
    keys = [Subject(f"key:{i}", Limits(rpm=rpm)) for i, rpm in enumerate(key_rpms)]
    logs = {s.name: RequestLog(s.limits.rpm) for s in [tenant, *keys]}
    now = START
    for i, (gap, key) in enumerate(requests):
        now += gap * TICK
        subjects = [tenant, keys[key]]
        mine = [logs[s.name] for s in subjects]
        decision = limits.admit(subjects, f"r{i}", now=now)
        assert decision.allowed == all(log.has_room(now) for log in mine)
        if decision.allowed:
            for log in mine:
                log.times.append(now)
            counted = [(log.rpm, log.rpm - log.count(now)) for log in mine if log.rpm]
            if counted:  # the tightest subject's count is what the headers show
                assert decision.remaining == min(remaining for _, remaining in counted)
                assert (decision.limit, decision.remaining) in counted
            else:
                assert decision == Decision(True)
        else:
            refusing = [log for log in mine if not log.has_room(now)]
            assert decision.retry_after_s == max(log.wait(now) for log in refusing)
            assert decision.limit in [log.rpm for log in refusing]
            assert_retry_after_is_exact(limits, admit_again(subjects), now, decision)
        snapshot = limits.snapshot([tenant, *keys], now=now)
        for name, log in logs.items():  # a refusal charged nobody
            assert snapshot[name]["requests_last_minute"] == log.count(now)


def test_a_refusal_by_the_tenant_charges_the_key_nothing() -> None:
    limits = limiter()
    tenant = Subject("tenant:t", Limits(rpm=1, tokens_per_day=10))
    key_a, key_b = Subject("key:a", Limits(rpm=5)), Subject("key:b", Limits(rpm=5))
    assert limits.admit([tenant, key_a], "1", now=START).allowed
    refused = limits.admit([tenant, key_b], "2", now=START + 1)
    assert (refused.allowed, refused.reason, refused.limit) == (False, "requests_per_minute", 1)
    assert limits.reserve([tenant, key_a], "3", 8, now=START + 2).allowed
    assert not limits.reserve([tenant, key_b], "4", 3, now=START + 3).allowed
    usage = limits.snapshot([tenant, key_a, key_b], now=START + 3)
    assert usage["key:b"] == {"requests_last_minute": 0, "tokens_last_minute": 0,
                              "tokens_today": 0, "streams": 0}  # fmt: skip
    assert usage["tenant:t"]["tokens_today"] == 8


def test_the_longest_wait_among_refusing_subjects_is_the_retry_after() -> None:
    limits = limiter()
    tenant, key = Subject("tenant:t", Limits(rpm=2)), Subject("key:k", Limits(rpm=1))
    assert limits.admit([tenant], "0", now=START).allowed  # tenant only: full at START + 10
    assert limits.admit([tenant, key], "1", now=START + 10).allowed
    refused = limits.admit([tenant, key], "2", now=START + 20)
    # tenant frees a slot at START + 60, the key only at START + 70
    assert (refused.retry_after_s, refused.limit) == (50.0, 1)


def test_the_tightest_subject_determines_the_headers() -> None:
    limits = limiter()
    tenant = Subject("tenant:t", Limits(rpm=100, tokens_per_minute=1000, tokens_per_day=5000))
    key = Subject("key:k", Limits(rpm=3, tokens_per_minute=50))
    admitted = limits.admit([tenant, key], "1", now=START)
    assert (admitted.resource, admitted.limit, admitted.remaining) == ("requests", 3, 2)
    reserved = limits.reserve([tenant, key], "1", 40, now=START)
    assert (reserved.resource, reserved.limit, reserved.remaining) == ("tokens_per_minute", 50, 10)
    limits.settle([tenant, key], "1", 1, now=START + 1)
    reserved = limits.reserve([tenant, key], "2", 1, now=START + 2)
    assert (reserved.resource, reserved.limit, reserved.remaining) == ("tokens_per_minute", 50, 48)


# --- 5. streams ------------------------------------------------------------------------------


def stream_subjects(cap: int) -> list[Subject]:
    return [Subject("key:k", Limits(max_streams=cap))]


def test_a_cap_of_n_concurrent_streams_refuses_the_next_one() -> None:
    limits, subjects = limiter(), stream_subjects(2)
    assert limits.admit(subjects, "s1", stream_ttl_s=300, now=START).allowed
    assert limits.admit(subjects, "s2", stream_ttl_s=300, now=START + 1).allowed
    refused = limits.admit(subjects, "s3", stream_ttl_s=300, now=START + 2)
    assert (refused.allowed, refused.reason, refused.limit) == (False, "streams", 2)
    assert refused.retry_after_s == STREAM_RETRY_S
    assert refused.retry_after_header == "1"
    assert limits.admit(subjects, "plain", now=START + 3).allowed  # not a stream: no cap


def test_releasing_a_stream_frees_exactly_one_lease() -> None:
    limits, subjects = limiter(), stream_subjects(2)
    for rid in ("s1", "s2"):
        assert limits.admit(subjects, rid, stream_ttl_s=300, now=START).allowed
    limits.release(subjects, "s1")
    assert limits.snapshot(subjects, now=START + 1)["key:k"]["streams"] == 1
    assert limits.admit(subjects, "s3", stream_ttl_s=300, now=START + 1).allowed
    assert not limits.admit(subjects, "s4", stream_ttl_s=300, now=START + 1).allowed


def test_an_unreleased_stream_lease_expires_after_its_ttl() -> None:
    limits, subjects = limiter(), stream_subjects(1)
    assert limits.admit(subjects, "crashed", stream_ttl_s=120, now=START).allowed
    assert not limits.admit(subjects, "s2", stream_ttl_s=120, now=START + 120 - EPS).allowed
    assert limits.admit(subjects, "s2", stream_ttl_s=120, now=START + 120).allowed


def test_a_stream_refusal_counts_no_request() -> None:
    limits, subjects = limiter(), [Subject("key:k", Limits(rpm=5, max_streams=1))]
    assert limits.admit(subjects, "s1", stream_ttl_s=300, now=START).allowed
    assert not limits.admit(subjects, "s2", stream_ttl_s=300, now=START + 1).allowed
    assert limits.snapshot(subjects, now=START + 1)["key:k"]["requests_last_minute"] == 1


@DETERMINISTIC
@given(
    cap=st.integers(1, 4),
    ttl_s=st.integers(1, 120),
    events=st.lists(st.tuples(ticks(60.0), st.booleans(), st.integers(0, 1000)), max_size=40),
)
def test_streams_are_admitted_exactly_while_fewer_than_the_cap_are_live(
    cap: int, ttl_s: int, events: list[tuple[int, bool, int]]
) -> None:
    limits, subjects = limiter(), stream_subjects(cap)
    live: dict[str, float] = {}  # rid -> expiry
    rids: list[str] = []
    now = START
    for i, (gap, open_one, pick) in enumerate(events):
        now += gap * TICK
        live = {rid: expiry for rid, expiry in live.items() if expiry > now}
        if open_one or not rids:
            rid = f"s{i}"
            rids.append(rid)
            decision = limits.admit(subjects, rid, stream_ttl_s=ttl_s, now=now)
            assert decision.allowed == (len(live) < cap)
            if decision.allowed:
                live[rid] = now + ttl_s
        else:
            rid = rids[pick % len(rids)]  # live, expired, released or refused: all the same
            limits.release(subjects, rid)
            live.pop(rid, None)
        assert limits.snapshot(subjects, now=now)["key:k"]["streams"] == len(live)


# --- 6. idempotence --------------------------------------------------------------------------


def token_subjects() -> list[Subject]:
    return [Subject("tenant:t", Limits(tokens_per_minute=100, tokens_per_day=1000)),
            Subject("key:k", Limits(tokens_per_minute=50))]  # fmt: skip


def test_settle_is_idempotent() -> None:
    limits, subjects = limiter(), token_subjects()
    assert limits.reserve(subjects, "a", 20, now=START).allowed
    limits.settle(subjects, "a", 7, now=START + 1)
    once = limits.snapshot(subjects, now=START + 1)
    limits.settle(subjects, "a", 7, now=START + 2)
    assert limits.snapshot(subjects, now=START + 2) == once
    assert once["tenant:t"]["tokens_today"] == once["key:k"]["tokens_last_minute"] == 7


def test_settle_of_an_unknown_or_refused_reservation_does_nothing() -> None:
    limits, subjects = limiter(), token_subjects()
    assert limits.reserve(subjects, "a", 20, now=START).allowed
    assert not limits.reserve(subjects, "refused", 40, now=START).allowed
    before = limits.snapshot(subjects, now=START)
    limits.settle(subjects, "unknown", 5, now=START)
    limits.settle(subjects, "refused", 5, now=START)
    assert limits.snapshot(subjects, now=START) == before


def test_settle_after_midnight_leaves_the_new_days_total_alone() -> None:
    limits, subjects = limiter(), token_subjects()
    assert limits.reserve(subjects, "late", 30, now=START + DAY - 1).allowed
    limits.settle(subjects, "late", 5, now=START + DAY + 1)
    usage = limits.snapshot(subjects, now=START + DAY + 1)["tenant:t"]
    assert (usage["tokens_today"], usage["tokens_last_minute"]) == (0, 5)


def test_release_is_idempotent_and_ignores_unknown_leases_and_subjects() -> None:
    limits, subjects = limiter(), stream_subjects(3)
    for rid in ("s1", "s2"):
        assert limits.admit(subjects, rid, stream_ttl_s=300, now=START).allowed
    limits.release(subjects, "s1")
    limits.release(subjects, "s1")
    limits.release(subjects, "never")
    limits.release([Subject("key:unseen", Limits())], "s2")
    assert limits.snapshot(subjects, now=START)["key:k"]["streams"] == 1


# --- 7. too large ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "resource"),
    [(Limits(tokens_per_minute=10), "tokens_per_minute"),
     (Limits(tokens_per_day=10), "tokens_per_day"),
     (Limits(tokens_per_minute=10, tokens_per_day=1000), "tokens_per_minute")],
)  # fmt: skip
def test_a_reservation_bigger_than_a_limit_is_too_large_forever(
    limits: Limits, resource: str
) -> None:
    limiter_ = limiter()
    subjects = [Subject("tenant:t", Limits()), Subject("key:k", limits)]
    refused = limiter_.reserve(subjects, "big", 11, now=START)
    assert (refused.allowed, refused.reason, refused.resource) == (False, "too_large", resource)
    assert (refused.limit, refused.retry_after_s) == (10, math.inf)
    assert limiter_.snapshot(subjects, now=START)["tenant:t"]["tokens_today"] == 0
    assert limiter_.reserve(subjects, "fits", 10, now=START).allowed  # exactly the limit fits


def test_too_large_is_reported_even_when_the_window_is_also_full() -> None:
    limits, subjects = limiter(), [Subject("key:k", Limits(tokens_per_minute=10))]
    assert limits.reserve(subjects, "a", 10, now=START).allowed
    assert limits.reserve(subjects, "big", 11, now=START + 1).reason == "too_large"


# --- 8. day_seed -----------------------------------------------------------------------------


def test_day_seed_starts_the_days_total() -> None:
    asked: list[tuple[str, int]] = []

    def seed(name: str, day: int) -> int:
        asked.append((name, day))
        return 70

    limits, subjects = limiter(seed), [Subject("tenant:t", Limits(tokens_per_day=100))]
    assert limits.snapshot(subjects, now=START + 5)["tenant:t"]["tokens_today"] == 70
    assert asked == [("tenant:t", int(START // DAY))]
    reserved = limits.reserve(subjects, "a", 20, now=START + 6)
    assert (reserved.allowed, reserved.remaining) == (True, 10)
    refused = limits.reserve(subjects, "b", 11, now=START + 7)
    assert (refused.reason, refused.remaining) == ("tokens_per_day", 10)
    assert asked == [("tenant:t", int(START // DAY))]  # once per subject and day


def test_day_seed_is_asked_again_for_each_new_day() -> None:
    limits = limiter(lambda name, day: day - int(START // DAY))  # 0 today, 1 tomorrow
    subjects = [Subject("tenant:t", Limits(tokens_per_day=100))]
    assert limits.snapshot(subjects, now=START)["tenant:t"]["tokens_today"] == 0
    assert limits.snapshot(subjects, now=START + DAY)["tenant:t"]["tokens_today"] == 1
