"""Shadow traffic: a sampled copy of live requests runs on a shadow variant after the live
answer is sent, and the two are compared (retrieval overlap at k, answer similarity, latency)
into metrics and a JSONL log. Never shown to the user, and by default never beside a live request:
copies wait until the whole app is idle (`LiveBoard`), and live traffic that comes back cancels
them.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragcore.metrics import MetricsSink, NullMetrics, elapsed_ms
from ragcore.protocols import Answer, Hit, SearchOutcome
from ragcore.variants.live_board import LiveBoard
from utils.logs import get_logger
from utils.variant_settings import VariantSettings, VariantsSettings

log = get_logger("shadow")
ShadowResult = Answer | SearchOutcome
Embed = Callable[[str], Awaitable[np.ndarray]]


@dataclass(frozen=True)
class LiveResult:
    """What the user got: the comparison's left side."""

    request_id: str
    tenant: str
    route: str
    question: str  # screened: PII is redacted before anything is logged
    variant: str
    hits: Sequence[Hit]
    latency_ms: float
    answer: str | None = None  # None for /search
    path: str = ""


@dataclass(frozen=True)
class ShadowComparison:
    """One line of the shadow log."""

    ts: float
    request_id: str
    tenant: str
    route: str
    question: str
    live_variant: str
    shadow_variant: str
    k: int
    overlap_at_k: float
    answer_similarity: float | None
    live_ms: float
    shadow_ms: float
    live_path: str
    shadow_path: str
    live_answer: str | None
    shadow_answer: str | None


def overlap_at_k(live: Sequence[Hit], shadow: Sequence[Hit]) -> float:
    """Share of the live top-k sections (page and heading) that the shadow's top-k holds too;
    sections, not chunks, so two index versions chunked differently still compare."""
    if not live:
        return 1.0 if not shadow else 0.0
    theirs = {(h.source, h.title) for h in shadow[: len(live)]}
    return sum((h.source, h.title) in theirs for h in live) / len(live)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (0 when one is zero)."""
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 0.0 if norm == 0 else float(np.dot(a, b) / norm)


@dataclass
class _Copy:
    """A shadow copy waiting for idle capacity."""

    variant: VariantSettings
    run: Callable[[], Awaitable[ShadowResult]]
    live: LiveResult
    queued_at: float
    attempts: int = 0


class ShadowTraffic:
    """Samples, queues, runs, compares and logs shadow copies of live requests (one per
    replica). Copies wait in a bounded queue until the whole app is idle (`LiveBoard`) and are
    cancelled when live traffic comes back; a cancelled copy is tried once more."""

    def __init__(
        self,
        settings: VariantsSettings,
        log_path: Path | None,
        metrics: MetricsSink | None = None,
        embed: Embed | None = None,
        sample: Callable[[], float] = random.random,
        board: LiveBoard | None = None,
    ) -> None:
        self.settings = settings
        self.log_path = log_path
        self.metrics = metrics or NullMetrics()
        self.embed = embed
        self.sample = sample
        self.board = board or LiveBoard(None, settings)
        self._queue: deque[_Copy] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None

    def update(self, settings: VariantsSettings) -> None:
        """New variants from a `user_config` change (running copies finish)."""
        self.settings = settings
        self.board.settings = settings

    def live_started(self) -> None:
        """A live request began here: above the live limit, running copies are cancelled at
        once (other replicas see it on the board)."""
        self.board.started()
        if self.board.in_flight > self.settings.shadow_max_live_in_flight:
            for task in list(self._tasks):
                task.cancel()

    def live_finished(self) -> None:
        """A live request ended (however it ended)."""
        self.board.finished()

    def variants(self, live: str = "") -> list[VariantSettings]:
        """The shadow variants a request served by `live` (name@version) is copied to:
        sampled, and never the variant that served it (a forced shadow variant)."""
        return [v for v in self.settings.items if v.role == "shadow" and v.label != live
                and self.sample() < v.shadow_sample]  # fmt: skip

    def copy(self, variant: VariantSettings, run: Callable[[], Awaitable[ShadowResult]],
             live: LiveResult) -> None:  # fmt: skip
        """Queue the shadow run (fire-and-forget); it starts when the app is idle and its
        comparison is logged when it ends. A full queue drops its oldest copy."""
        self._queue.append(_Copy(variant, run, live, time.monotonic()))
        while len(self._queue) > self.settings.shadow_max_queued:
            self.metrics.shadow(self._queue.popleft().variant.label, "dropped")
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        """Start queued copies while the app is idle; cancel running ones when it is not."""
        while self._queue or self._tasks:
            self._expire()
            if await self.board.busy(self.settings.shadow_max_live_in_flight):
                for task in list(self._tasks):
                    task.cancel()
                # Busy now: idle is at least shadow_idle_s away.
                await asyncio.sleep(max(self.settings.shadow_poll_s, self.settings.shadow_idle_s))
                continue
            if self._queue and len(self._tasks) < self.settings.shadow_max_in_flight:
                item = self._queue.popleft()
                task = asyncio.get_running_loop().create_task(self._run(item))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(self.settings.shadow_poll_s)

    def _expire(self) -> None:
        """Drop copies that waited longer than shadow_max_wait_s."""
        oldest = time.monotonic() - self.settings.shadow_max_wait_s
        while self._queue and self._queue[0].queued_at < oldest:
            self.metrics.shadow(self._queue.popleft().variant.label, "expired")

    async def _run(self, item: _Copy) -> None:
        variant, live = item.variant, item.live
        start = time.perf_counter()
        try:
            result = await item.run()
            comparison = await self._compare(variant, live, result, elapsed_ms(start))
        except asyncio.CancelledError:
            self.metrics.shadow(variant.label, "preempted")
            item.attempts += 1
            if item.attempts < 2:
                self._queue.appendleft(item)  # its turn again at the next idle moment
            return
        except Exception as exc:
            self.metrics.shadow(variant.label, "failed")
            log.warning("shadow run failed", extra={"variant": variant.label,
                                                    "error": repr(exc)[:200]})  # fmt: skip
            return
        self.metrics.shadow(variant.label, "compared")
        self.metrics.shadow_comparison(variant.label, comparison.overlap_at_k,
                                       comparison.answer_similarity, comparison.live_ms,
                                       comparison.shadow_ms)  # fmt: skip
        await self._append(comparison)

    async def _compare(self, variant: VariantSettings, live: LiveResult, result: ShadowResult,
                       shadow_ms: float) -> ShadowComparison:  # fmt: skip
        hits = result.sources if isinstance(result, Answer) else result.hits
        text = result.text if isinstance(result, Answer) else None
        similarity = None
        if text is not None and live.answer is not None and self.embed is not None:
            similarity = round(cosine(await self.embed(live.answer), await self.embed(text)), 4)
        return ShadowComparison(
            time.time(), live.request_id, live.tenant, live.route, live.question, live.variant,
            variant.label, len(live.hits), round(overlap_at_k(live.hits, hits), 4), similarity,
            round(live.latency_ms, 2), round(shadow_ms, 2), live.path,
            result.path if isinstance(result, Answer) else "", live.answer, text,
        )  # fmt: skip

    async def _append(self, comparison: ShadowComparison) -> None:
        if self.log_path is None:
            return
        line = json.dumps(asdict(comparison), ensure_ascii=False) + "\n"
        await asyncio.to_thread(_append_line, self.log_path, line)

    async def drain(self) -> None:
        """Wait until every queued copy has run or been dropped (tests, shutdown)."""
        while self._worker is not None and not self._worker.done():
            await asyncio.gather(self._worker, return_exceptions=True)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _append_line(path: Path, line: str) -> None:
    # One write per line in append mode: replicas that share the file never interleave lines.
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(line)


def read_log(path: Path) -> list[dict[str, Any]]:
    """The comparisons a shadow log holds."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
