"""Variants, the answer cache and fallbacks in the plain service (fakes for the engines)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ragcore.protocols import AnswerDone, AnswerToken
from tests.helpers import ScriptedGenerator, make_service, publish_tiny_index

QUESTION = "How do I batch requests?"
VARIANTS = {"items": [
    {"name": "main", "weight": 1},
    {"name": "bad", "weight": 0, "role": "canary", "fault": {"error_rate": 1.0}},
    {"name": "short", "weight": 0, "decoding": {"max_tokens": 9}, "retrieval": {"top_k": 1}},
], "canary": {"min_requests": 3}}  # fmt: skip


def test_a_repeated_question_is_an_exact_hit_for_its_tenant_only(tmp_path: Path) -> None:
    publish_tiny_index(tmp_path)
    generator = ScriptedGenerator("Batch with serve.batch [1].")
    service, _ = make_service(tmp_path, generator, cache=True)

    async def run() -> list[object]:
        first = await service.ask(QUESTION, 2, tenant="acme")
        again = await service.ask("how do i batch requests", 2, tenant="acme")
        other = await service.ask(QUESTION, 2, tenant="globex")
        return [first, again, other]

    first, again, other = asyncio.run(run())
    assert first.path == "generator" and first.cache == ""  # type: ignore[attr-defined]
    assert again.cache == "exact" and again.path == "cache"  # type: ignore[attr-defined]
    assert again.text == first.text and again.usage.total == 0  # type: ignore[attr-defined]
    assert again.tokens_saved == 107  # type: ignore[attr-defined]
    assert other.cache == "" and other.path == "generator"  # type: ignore[attr-defined]


async def wait_for_tasks(experiments: object) -> None:
    """Let the background rollback writes finish."""
    tasks = list(experiments._tasks)  # type: ignore[attr-defined]
    if tasks:
        await asyncio.gather(*tasks)


def test_an_index_swap_and_a_stream_miss_then_hit(tmp_path: Path) -> None:
    publish_tiny_index(tmp_path)
    service, manager = make_service(tmp_path, ScriptedGenerator("Batch with serve.batch [1]."),
                                    cache=True)  # fmt: skip

    async def stream() -> list[object]:
        return [e async for e in service.ask_stream(QUESTION, 2)]

    async def run() -> list[object]:
        await service.ask(QUESTION, 2)
        hit = await stream()
        publish_tiny_index(tmp_path)  # a new version...
        assert manager.refresh()  # ...goes live
        return [hit, await service.ask(QUESTION, 2)]

    hit, after = asyncio.run(run())
    assert isinstance(hit[0], AnswerToken) and isinstance(hit[-1], AnswerDone)
    assert hit[-1].answer.cache == "exact"
    assert after.cache == "" and after.path == "generator"  # type: ignore[attr-defined]


def test_a_failing_engine_falls_back_to_another_then_to_quotes(tmp_path: Path) -> None:
    publish_tiny_index(tmp_path)
    primary = ScriptedGenerator(fail=True)
    spare = ScriptedGenerator("Batch with serve.batch [1].")
    service, _ = make_service(tmp_path, primary, engines={"spare": spare},
                              breaker={"failures": 2, "open_s": 60})  # fmt: skip
    answers = [asyncio.run(service.ask(QUESTION, 2)) for _ in range(3)]
    assert [a.path for a in answers] == ["fallback_generator"] * 3
    assert answers[0].engine == "spare" and "serve.batch" in answers[0].text
    assert service.engines.states()["default"] == "open"
    primary.last_params = None
    spare.fail = True
    last = asyncio.run(service.ask(QUESTION, 2))
    assert primary.last_params is None  # its circuit is open: not even tried
    assert last.path == "fallback_extractive" and last.status == "degraded"
    assert last.mode == "extractive"


def test_variant_settings_shape_the_answer(tmp_path: Path) -> None:
    publish_tiny_index(tmp_path)
    generator = ScriptedGenerator("Batch with serve.batch [1].")
    service, _ = make_service(tmp_path, generator, variants=VARIANTS)
    short = service.experiments.settings.by_name()["short"]
    answer = asyncio.run(service.ask(QUESTION, None, variant=short))
    assert answer.variant == "short@1" and len(answer.sources) == 1
    assert generator.last_params is not None and generator.last_params.max_tokens == 9
    assert len(asyncio.run(service.search(QUESTION, None, variant=short)).hits) == 1
    assert len(asyncio.run(service.search(QUESTION, None)).hits) == 3  # main: top_k 5


def test_a_faulty_canary_is_rolled_back(tmp_path: Path) -> None:
    publish_tiny_index(tmp_path)
    service, _ = make_service(tmp_path, ScriptedGenerator("Batch with serve.batch [1]."),
                              variants=VARIANTS)  # fmt: skip
    bad = service.experiments.settings.by_name()["bad"]

    async def run() -> None:
        for _ in range(3):
            answer = await service.ask(QUESTION, 2, variant=bad)
            assert answer.path == "fallback_extractive"
        await wait_for_tasks(service.experiments)
        await service.experiments.sync()

    asyncio.run(run())
    assert service.experiments.router.rolled_back == {"bad@1": "error_rate"}
    assert service.engines.states()["default"] == "closed"  # the drill has its own breaker


def test_a_hot_retrieval_change_is_a_new_cache_scope(tmp_path: Path) -> None:
    publish_tiny_index(tmp_path)
    service, manager = make_service(tmp_path, ScriptedGenerator("Batch with serve.batch [1]."),
                                    cache=True)  # fmt: skip

    async def run() -> list[object]:
        await service.ask(QUESTION, 2)
        hit = await service.ask(QUESTION, 2)
        manager.reconfigure({"rrf_k": 30})  # what the Ingress's user_config does
        assert manager.refresh()
        return [hit, await service.ask(QUESTION, 2)]

    hit, after = asyncio.run(run())
    assert hit.cache == "exact"  # type: ignore[attr-defined]
    assert after.cache == "" and after.path == "generator"  # type: ignore[attr-defined]
