"""Shadow traffic: overlap at k, sampling and bounds, giving way to live requests, the log."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ragcore.cache.store import LocalCacheStore, MemoryCache
from ragcore.protocols import Answer, Hit, SearchOutcome, Usage
from ragcore.variants.live_board import LiveBoard
from ragcore.variants.shadow import LiveResult, ShadowTraffic, overlap_at_k, read_log
from tests.helpers import RecordingMetrics, ScriptedGenerator, make_service, publish_tiny_index
from utils.variant_settings import CacheSettings, VariantsSettings


def _hit(source: str, title: str = "T") -> Hit:
    return Hit("text", source, 1.0, title)


def _settings(**more: Any) -> VariantsSettings:
    return VariantsSettings(items=[{"name": "main"},
                                   {"name": "next", "role": "shadow", "shadow_sample": 1.0}],
                            **more)  # fmt: skip


def test_overlap_counts_shared_sections_of_the_live_top_k() -> None:
    live = [_hit("a"), _hit("b"), _hit("c", "other section")]
    assert overlap_at_k(live, [_hit("b"), _hit("a"), _hit("c")]) == 2 / 3
    assert overlap_at_k(live, [_hit("z"), _hit("y"), _hit("x"), _hit("a")]) == 0.0  # past k
    assert overlap_at_k([], []) == 1.0


def test_copies_are_sampled_and_never_of_the_serving_variant() -> None:
    draws = iter([0.5, 0.05])
    sampled = ShadowTraffic(VariantsSettings(items=[
        {"name": "main"}, {"name": "s", "role": "shadow", "shadow_sample": 0.1}]),
        None, sample=lambda: next(draws))  # fmt: skip
    assert sampled.variants() == [] and [v.name for v in sampled.variants()] == ["s"]
    assert sampled.variants("s@1") == []  # a request forced onto the shadow is not copied


def _replicas(tmp_path: Path, **more: Any) -> tuple[ShadowTraffic, LiveBoard]:
    """This replica's shadows and another replica's board, over one shared store."""
    settings = _settings(shadow_idle_s=0.05, shadow_poll_s=0.01, **more)
    store = LocalCacheStore(MemoryCache(CacheSettings()))
    shadows = ShadowTraffic(settings, tmp_path / "shadow.jsonl",
                            board=LiveBoard(store, settings, "here"))  # fmt: skip
    return shadows, LiveBoard(store, settings, "there")


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.005)


def test_a_copy_waits_for_the_whole_app_and_gives_way_to_any_replica(tmp_path: Path) -> None:
    shadows, other = _replicas(tmp_path)
    metrics = RecordingMetrics()
    shadows.metrics = metrics
    runs: list[str] = []
    live = LiveResult("r", "acme", "search", "q", "main@1", [_hit("a")], 5.0)

    async def copy() -> Any:
        runs.append("started")
        await asyncio.sleep(0 if len(runs) > 1 else 60)  # the first attempt is preempted
        return SearchOutcome([_hit("a")], "v1")

    async def run() -> list[str]:
        other.started()  # a user's request on the other replica
        (variant,) = shadows.variants()
        shadows.copy(variant, copy, live)
        await asyncio.sleep(0.2)  # several idle times: the copy must still wait
        waited = list(runs)
        other.finished()
        await _until(lambda: len(runs) == 1)  # idle: it starts...
        other.started()  # ...and the next user on the other replica preempts it
        await _until(lambda: ("next@1", "preempted") in metrics.shadows)
        other.finished()
        await shadows.drain()  # then it is tried once more, at the next idle time
        return waited

    assert asyncio.run(run()) == []
    assert runs == ["started", "started"]
    assert metrics.shadows == [("next@1", "preempted"), ("next@1", "compared")]
    assert len(read_log(tmp_path / "shadow.jsonl")) == 1


def test_a_live_request_here_cancels_a_copy_at_once_and_the_queue_is_bounded(
    tmp_path: Path,
) -> None:
    shadows, _ = _replicas(tmp_path, shadow_max_queued=2)
    metrics = RecordingMetrics()
    shadows.metrics = metrics
    started = asyncio.Event()
    live = LiveResult("r", "acme", "search", "q", "main@1", [_hit("a")], 5.0)

    async def slow() -> Any:
        started.set()
        await asyncio.sleep(60)

    async def run() -> int:
        (variant,) = shadows.variants()
        for _ in range(3):  # one more than the queue holds: the oldest is dropped
            shadows.copy(variant, slow, live)
        await started.wait()
        shadows.live_started()  # a user here: the running copy stops before any await
        cancelled = sum(t.cancelling() > 0 for t in shadows._tasks)
        await _until(lambda: ("next@1", "preempted") in metrics.shadows)
        shadows._queue.clear()  # (it was queued again: nothing else to run)
        shadows.live_finished()
        await shadows.drain()
        return cancelled

    assert asyncio.run(run()) == 1
    assert metrics.shadows[:2] == [("next@1", "dropped"), ("next@1", "preempted")]


def test_copies_may_run_beside_a_set_number_of_live_requests(tmp_path: Path) -> None:
    shadows, other = _replicas(tmp_path, shadow_max_live_in_flight=1)
    live = LiveResult("r", "acme", "search", "q", "main@1", [_hit("a")], 5.0)

    async def quick() -> Any:
        return SearchOutcome([_hit("a")], "v1")

    async def run() -> None:
        other.started()  # one live request in the app: allowed beside
        (variant,) = shadows.variants()
        shadows.copy(variant, quick, live)
        await shadows.drain()

    asyncio.run(run())
    assert len(read_log(tmp_path / "shadow.jsonl")) == 1


def test_a_comparison_is_logged_with_overlap_similarity_and_latency(tmp_path: Path) -> None:
    async def embed(text: str) -> np.ndarray:
        return np.array([1.0, 0.0]) if "batch" in text else np.array([0.0, 1.0])

    shadows = ShadowTraffic(_settings(), tmp_path / "shadow.jsonl", embed=embed)
    live = LiveResult("r1", "acme", "ask", "How?", "main@1", [_hit("a"), _hit("b")], 80.0,
                      "Use serve.batch", "generator")  # fmt: skip
    theirs = Answer("Use batch sizes", [_hit("b"), _hit("c")], Usage(), 120.0, variant="next@1")

    async def shadow_answer() -> Answer:
        return theirs

    async def run() -> None:
        (variant,) = shadows.variants()
        shadows.copy(variant, shadow_answer, live)
        await shadows.drain()

    asyncio.run(run())
    (line,) = read_log(tmp_path / "shadow.jsonl")
    assert line["request_id"] == "r1" and line["shadow_variant"] == "next@1"
    assert line["overlap_at_k"] == 0.5 and line["answer_similarity"] == 1.0
    assert line["live_ms"] == 80.0 and line["shadow_ms"] >= 0
    assert line["live_answer"] == "Use serve.batch" and line["shadow_answer"] == "Use batch sizes"


def test_the_service_shadows_an_answer_without_changing_it(tmp_path: Path) -> None:
    publish_tiny_index(tmp_path)
    plain, _ = make_service(tmp_path, ScriptedGenerator("Batch with serve.batch [1]."))
    variants = {
        "items": [
            {"name": "main"},
            {"name": "next", "role": "shadow", "shadow_sample": 1.0, "retrieval": {"top_k": 1}},
        ]
    }
    shadowed, _ = make_service(tmp_path, ScriptedGenerator("Batch with serve.batch [1]."),
                               variants=variants)  # fmt: skip

    async def run() -> tuple[Answer, Answer]:
        without = await plain.ask("How do I batch requests?", None)
        with_shadow = await shadowed.ask("How do I batch requests?", None)
        await shadowed.shadows.drain()  # a live request arriving now would cancel the copy
        await shadowed.search("batch requests", 2)
        await shadowed.shadows.drain()
        return without, with_shadow

    without, with_shadow = asyncio.run(run())
    assert with_shadow.text == without.text and with_shadow.variant == "main@1"
    assert [h.source for h in with_shadow.sources] == [h.source for h in without.sources]
    lines = {line["route"]: line for line in read_log(tmp_path / "state" / "shadow.jsonl")}
    answer_line, search_line = lines["ask"], lines["search"]
    assert answer_line["route"] == "ask" and answer_line["shadow_variant"] == "next@1"
    k = len(without.sources)  # the shadow retrieves only its top 1 of them
    assert k == 3 and answer_line["k"] == k and answer_line["overlap_at_k"] == round(1 / k, 4)
    assert search_line["route"] == "search" and search_line["answer_similarity"] is None
    assert search_line["question"] == ""  # no redactor, so no query text is logged
