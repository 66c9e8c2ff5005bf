"""Shadow traffic: overlap at k, sampling and bounds, giving way to live requests, the log."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np

from ragcore.protocols import Answer, Hit, Usage
from ragcore.variants.shadow import LiveResult, ShadowTraffic, overlap_at_k, read_log
from tests.helpers import ScriptedGenerator, make_service, publish_tiny_index
from utils.variant_settings import VariantsSettings


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


def test_copies_are_sampled_bounded_and_give_way_to_live_requests(tmp_path: Path) -> None:
    draws = iter([0.5, 0.05])
    sampled = ShadowTraffic(VariantsSettings(items=[
        {"name": "main"}, {"name": "s", "role": "shadow", "shadow_sample": 0.1}]),
        None, sample=lambda: next(draws))  # fmt: skip
    assert sampled.variants() == [] and [v.name for v in sampled.variants()] == ["s"]
    assert sampled.variants("s@1") == []  # a request forced onto the shadow is not copied
    shadows = ShadowTraffic(_settings(shadow_max_in_flight=1, shadow_max_live_in_flight=1),
                            tmp_path / "shadow.jsonl")  # fmt: skip
    live = LiveResult("r", "acme", "search", "q", "main@1", [_hit("a")], 5.0)
    started = asyncio.Event()

    async def slow() -> Any:
        started.set()
        await asyncio.sleep(60)

    async def run() -> tuple[int, int, int, bool]:
        (variant,) = shadows.variants()
        shadows.copy(variant, slow, live)
        await started.wait()
        full = len(shadows.variants())  # one in flight: no room
        shadows.live_started()
        one_live = len(shadows._tasks)  # one live request: the copy keeps running
        shadows.live_started()  # a second: copies are cancelled...
        shadows.live_started()
        busy = len(shadows.variants())  # ...and a request with two others beside it adds none
        await shadows.drain()
        return full, one_live, busy, bool(shadows._tasks)

    assert asyncio.run(run()) == (0, 1, 0, False)
    assert read_log(tmp_path / "shadow.jsonl") == []  # a cancelled copy logs nothing


def test_by_default_a_copy_uses_idle_time_only(tmp_path: Path) -> None:
    shadows = ShadowTraffic(_settings(), tmp_path / "shadow.jsonl")
    live = LiveResult("r", "acme", "search", "q", "main@1", [_hit("a")], 5.0)

    async def slow() -> Any:
        await asyncio.sleep(60)

    async def run() -> tuple[int, int, int]:
        shadows.live_started()  # the request that launches the copy
        shadows.live_started()  # another one beside it
        beside = len(shadows.variants())  # no copy while another user waits
        shadows.live_finished()
        (variant,) = shadows.variants()  # alone: its copy may start
        shadows.copy(variant, slow, live)
        shadows.live_finished()
        running = len(shadows._tasks)  # it outlives the request that launched it
        shadows.live_started()  # the next user arrives: the copy gives way at once
        await shadows.drain()
        return beside, running, len(shadows._tasks)

    assert asyncio.run(run()) == (0, 1, 0)


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
