"""The plain RAGService: domain objects out, generation closed when the reader stops."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ragcore.protocols import Answer, AnswerDone, AnswerToken, GenerationDelta
from ragcore.service import RAGService
from tests.helpers import ScriptedGenerator, make_service, publish_tiny_index


async def _first_token_then_close(service: RAGService) -> None:
    events = service.ask_stream("batching", 2)
    assert isinstance(await anext(events), AnswerToken)
    await events.aclose()  # what the SSE response does when the client goes away


def test_closing_the_stream_early_closes_the_generation(tmp_path: Path) -> None:
    class SlowWords(ScriptedGenerator):
        async def stream(self, messages, params):  # type: ignore[no-untyped-def]
            try:
                for i in range(1000):
                    yield GenerationDelta(f"w{i} ")
            finally:
                self.closed = True

    publish_tiny_index(tmp_path)
    generator = SlowWords()
    service, _ = make_service(tmp_path, generator)
    asyncio.run(_first_token_then_close(service))
    assert generator.closed


def test_ask_returns_a_domain_answer(tmp_path: Path) -> None:
    publish_tiny_index(tmp_path)
    service, _ = make_service(tmp_path, ScriptedGenerator())
    answer = asyncio.run(service.ask("How do I batch requests?", 2))
    assert isinstance(answer, Answer) and answer.status == "ok"
    assert answer.usage.total == 107 and len(answer.sources) == 2


def test_stream_ends_with_the_whole_answer(tmp_path: Path) -> None:
    publish_tiny_index(tmp_path)
    service, _ = make_service(tmp_path, ScriptedGenerator("Batch with serve.batch [1]."))

    async def collect() -> list[object]:
        return [event async for event in service.ask_stream("batching", 2)]

    events = asyncio.run(collect())
    done = events[-1]
    assert isinstance(done, AnswerDone) and done.answer.text == "Batch with serve.batch [1]."
    assert all(isinstance(e, AnswerToken) for e in events[:-1])


def test_warm_up_gives_up_after_its_timeout_and_the_service_goes_ready(tmp_path: Path) -> None:
    publish_tiny_index(tmp_path)
    service, _ = make_service(tmp_path, ScriptedGenerator(fail=True),
                              generator={"warmup_timeout_s": 0.01})  # fmt: skip
    asyncio.run(service.warm_up())
    state = asyncio.run(service.readiness())
    assert state.ready and state.details["generator"].startswith("unavailable")


def test_the_service_is_not_ready_until_the_feedback_ledger_answers(tmp_path: Path) -> None:
    publish_tiny_index(tmp_path)
    service, _ = make_service(tmp_path, ScriptedGenerator(), feedback=True)
    state = asyncio.run(service.readiness())
    assert not state.ready and state.reason == "the feedback store is starting"
    asyncio.run(service.warm_up())
    state = asyncio.run(service.readiness())
    assert state.ready and state.details["feedback"] == "ready"


def test_ask_refuses_a_question_nothing_relevant_was_retrieved_for(tmp_path: Path) -> None:
    publish_tiny_index(tmp_path)
    generator = ScriptedGenerator()
    service, _ = make_service(tmp_path, generator, answers={"min_relevance": 0.99})
    answer = asyncio.run(service.ask("what is the capital of France?", 2))
    assert answer.mode == "refused" and answer.citations == () and answer.sources
    assert generator.last_params is None  # the model was not asked


def test_a_stream_that_loops_is_cut_at_the_first_repeat(tmp_path: Path) -> None:
    class Looping(ScriptedGenerator):
        async def stream(self, messages, params):  # type: ignore[no-untyped-def]
            try:
                for _ in range(200):
                    yield GenerationDelta("Batch requests with serve.batch in a deployment. ")
            finally:
                self.closed = True

    publish_tiny_index(tmp_path)
    generator = Looping()
    service, _ = make_service(tmp_path, generator)

    async def collect() -> list[object]:
        return [event async for event in service.ask_stream("batching", 2)]

    events = asyncio.run(collect())
    streamed = "".join(e.text for e in events if isinstance(e, AnswerToken))
    done = events[-1]
    assert isinstance(done, AnswerDone) and generator.closed
    assert streamed.count("serve.batch") <= 3  # cut at the first loop, not at 200
    answer = done.answer
    assert answer.stop_reason == "repetition" and answer.text.count("serve.batch") == 1
    assert answer.mode == "generated" and answer.citations  # the sentence before the loop


def test_a_runaway_answer_stops_at_the_sentence_limit(tmp_path: Path) -> None:
    class Rambling(ScriptedGenerator):
        async def stream(self, messages, params):  # type: ignore[no-untyped-def]
            words = [
                "alpha",
                "beta",
                "gamma",
                "delta",
                "epsilon",
                "zeta",
                "eta",
                "theta",
                "iota",
                "kappa",
                "lambda",
                "mu",
            ]
            try:
                for i in range(100):
                    self.sent = i + 1
                    yield GenerationDelta(f"{words[i % 12]} {words[(i * 5) % 12]} {i} serve. ")
            finally:
                self.closed = True

    publish_tiny_index(tmp_path)
    generator = Rambling()
    answers = {"min_relevance": -1.0, "validation": {"max_sentences": 3}}
    service, _ = make_service(tmp_path, generator, answers=answers)
    answer = asyncio.run(service.ask("batching", 2))
    assert generator.closed and generator.sent == 5  # three kept, the fourth ends, then stop
    assert answer.stop_reason == "sentence_limit" and answer.validation
    kept = "alpha alpha 0 serve. beta zeta 1 serve. gamma lambda 2 serve."
    assert answer.validation.chars == len(kept)


def test_stream_screens_invented_urls_and_citations(tmp_path: Path) -> None:
    publish_tiny_index(tmp_path)
    text = "Use serve.batch https://made.up/batching.html to batch requests [1][9]."
    service, _ = make_service(tmp_path, ScriptedGenerator(text))

    async def collect() -> list[object]:
        return [event async for event in service.ask_stream("batching", 2)]

    events = asyncio.run(collect())
    streamed = "".join(e.text for e in events if isinstance(e, AnswerToken))
    assert "made.up" not in streamed and "[9]" not in streamed and "[1]" in streamed
