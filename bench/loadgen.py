"""A closed-loop HTTP load generator: `concurrency` asyncio workers over one keep-alive httpx
client, each sending its next request as soon as the last one is answered."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from bench.common import pct

SEARCH_K = 5
ASK_TOP_K = 5


@dataclass
class Sample:
    """One request's outcome."""

    ok: bool
    latency_s: float
    error: str = ""
    ttft_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    done: dict[str, Any] | None = None
    question: str = ""


@dataclass
class Level:
    """One (system, route, concurrency) measurement."""

    system: str
    concurrency: int
    samples: list[Sample]
    wall_s: float
    skipped: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> list[Sample]:
        """The successful samples."""
        return [s for s in self.samples if s.ok]

    @property
    def generated(self) -> list[Sample]:
        """The successful samples the engine generated tokens for."""
        return [s for s in self.ok if s.completion_tokens]

    def without_engine(self) -> Counter[str]:
        """Successful answers the engine generated nothing for, by what answered them (the
        cache, a refusal, the extractive path)."""
        return Counter(
            "{answer_path} ({answer_mode}{cache})".format(
                answer_path=s.done.get("answer_path", "?"),
                answer_mode=s.done.get("answer_mode", "?"),
                cache=f", {s.done['cache']} cache hit" if s.done.get("cache") else "",
            )
            for s in self.ok
            if s.done is not None and not s.completion_tokens
        )

    @property
    def failed(self) -> int:
        """Failed requests plus those not started within the time limit."""
        return len(self.samples) - len(self.ok) + self.skipped

    @property
    def rps(self) -> float:
        """Successful requests per second of the level's wall time."""
        return len(self.ok) / self.wall_s if self.wall_s else 0.0

    @property
    def tokens_per_s(self) -> float:
        """Completion tokens per second of the level's wall time."""
        return sum(s.completion_tokens for s in self.ok) / self.wall_s if self.wall_s else 0.0

    def latency_ms(self, q: float) -> float:
        """The q-th percentile of successful requests' latency."""
        return pct([s.latency_s for s in self.ok], q)

    def ttft_ms(self, q: float) -> float:
        """The q-th percentile of time to the first token, over generated answers."""
        return pct([s.ttft_s for s in self.generated if s.ttft_s is not None], q)

    def decode_tokens_per_s(self) -> float:
        """Mean per-request decode speed after the first token, (completion - 1) / (latency -
        TTFT): it separates decoding from prefill and queueing, which TTFT holds."""
        rates = [
            (s.completion_tokens - 1) / (s.latency_s - s.ttft_s)
            for s in self.generated
            if s.ttft_s is not None and s.completion_tokens > 1 and s.latency_s > s.ttft_s
        ]
        return float(np.mean(rates)) if rates else float("nan")

    def summary(self) -> dict[str, Any]:
        """The level's figures, for the results JSON."""
        ok = self.ok
        figures: dict[str, Any] = {
            "system": self.system,
            "concurrency": self.concurrency,
            "ok": len(ok),
            "failed": self.failed,
            "wall_s": self.wall_s,
            "rps": self.rps,
            **{f"p{q}_ms": self.latency_ms(q) for q in (50, 95, 99)},
            "errors": dict(self.errors),
        }
        if self.generated:
            figures.update(
                ttft_p50_ms=self.ttft_ms(50),
                ttft_p99_ms=self.ttft_ms(99),
                prompt_tokens_mean=float(np.mean([s.prompt_tokens for s in self.generated])),
                without_engine=dict(self.without_engine()),
                completion_tokens=sum(s.completion_tokens for s in ok),
                decode_tokens_per_s=self.decode_tokens_per_s(),
                tokens_per_s=self.tokens_per_s,
            )
        return figures


Call = Callable[[httpx.AsyncClient, int], Awaitable[Sample]]


async def measure(
    system: str,
    call: Call,
    concurrency: int,
    warmup: int,
    total: int,
    limit_s: float,
    timeout_s: float,
    first: int = 0,
) -> Level:
    """`warmup` untimed requests, then `total` timed ones from `concurrency` workers over one
    keep-alive client; requests not started within `limit_s` count as skipped. Request i
    (from `first` on) is `call(client, i)`."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=timeout_s) as client:
        warm = iter(range(first, first + warmup))

        async def warm_worker() -> None:
            for i in warm:
                await call(client, i)

        await asyncio.gather(*(warm_worker() for _ in range(min(concurrency, max(warmup, 1)))))
        results: list[Sample] = []
        todo = iter(range(first + warmup, first + warmup + total))
        deadline = time.monotonic() + limit_s

        async def worker() -> None:
            for i in todo:
                if time.monotonic() > deadline:
                    return
                results.append(await call(client, i))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    errors = Counter(s.error for s in results if not s.ok)
    return Level(system, concurrency, results, wall, total - len(results), errors)


def search_call(url: str, questions: list[str], headers: dict[str, str] | None = None) -> Call:
    """GET {url}?query=...&k=SEARCH_K, cycling through the questions (with `headers`, e.g.
    an API key); a 200 without results counts as a failure."""

    async def call(client: httpx.AsyncClient, i: int) -> Sample:
        start = time.perf_counter()
        try:
            params: dict[str, str | int] = {"query": questions[i % len(questions)], "k": SEARCH_K}
            response = await client.get(url, params=params, headers=headers)
            latency = time.perf_counter() - start
        except httpx.HTTPError as exc:
            return Sample(False, time.perf_counter() - start, type(exc).__name__)
        if response.status_code != 200:
            return Sample(False, latency, f"HTTP {response.status_code}")
        if not response.json().get("results"):
            return Sample(False, latency, "no results")
        return Sample(True, latency)

    return call


async def _read_sse(response: httpx.Response, start: float) -> tuple[float | None, Any]:
    """Time to the first `token` event and the `done` event's body (None when absent)."""
    ttft: float | None = None
    event = ""
    done = None
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            if event == "token" and ttft is None:
                ttft = time.perf_counter() - start
            elif event == "done":
                done = json.loads(line[5:])
    return ttft, done


def ask_call(url: str, questions: list[str], max_tokens: int) -> Call:
    """POST {url} (/ask/stream, SSE): time to the first `token` event, usage from the `done`
    event. A degraded answer counts as a failure; an answer the engine generated nothing for
    (a cache hit, a refusal) succeeds with no tokens (`Level.without_engine` names them)."""

    async def call(client: httpx.AsyncClient, i: int) -> Sample:
        question = questions[i % len(questions)]
        body = {"question": question, "top_k": ASK_TOP_K, "max_tokens": max_tokens}
        start = time.perf_counter()
        try:
            async with client.stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    latency = time.perf_counter() - start
                    return Sample(False, latency, f"HTTP {response.status_code}")
                ttft, done = await _read_sse(response, start)
        except httpx.HTTPError as exc:
            return Sample(False, time.perf_counter() - start, type(exc).__name__)
        latency = time.perf_counter() - start
        if done is None:
            return Sample(False, latency, "no done event")
        if done.get("status") != "ok":
            return Sample(False, latency, f"{done.get('status')}: {done.get('message', '')}"[:80])
        usage = done.get("tokens_used") or {}
        completion = int(usage.get("completion") or 0)
        prompt = int(usage.get("prompt") or 0)
        return Sample(True, latency, "", ttft, prompt, completion, done, question)

    return call
