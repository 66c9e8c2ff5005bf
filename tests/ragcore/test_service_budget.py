"""The service reserves prompt + max_tokens before generating and always settles: after a
normal answer, a failed generation and a client that went away mid-stream."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ragcore.answering import AskOptions
from ragcore.protocols import AnswerToken, GenerationDelta, Usage
from ragcore.service import RAGService
from tests.helpers import ScriptedGenerator, make_service, publish_tiny_index
from utils.errors import RateLimitedError


class RecordingBudget:
    """A `TokenBudget` that writes down every call (and can refuse)."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.calls: list[tuple[str, object]] = []

    async def reserve(self, tokens: int) -> None:
        self.calls.append(("reserve", tokens))
        if self.refuse:
            raise RateLimitedError("tokens per minute limit of 10 reached", {"Retry-After": "3"})

    async def settle(self, usage: Usage) -> None:
        self.calls.append(("settle", usage))


class EndlessWords(ScriptedGenerator):
    async def stream(self, messages, params):  # type: ignore[no-untyped-def]
        try:
            for i in range(10_000):
                yield GenerationDelta(f"w{i} ")
        finally:
            self.closed = True


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    publish_tiny_index(tmp_path)
    return tmp_path


def _service(index_dir: Path, generator: ScriptedGenerator) -> RAGService:
    service, _ = make_service(index_dir, generator)
    service.count_tokens = lambda messages: 300  # the counted prompt
    return service


def test_reserves_prompt_plus_max_tokens_then_settles_to_the_engine_usage(index_dir: Path) -> None:
    budget = RecordingBudget()
    service = _service(index_dir, ScriptedGenerator())
    asyncio.run(service.ask("How do I batch requests?", 2, AskOptions(max_tokens=50),
                            budget=budget))  # fmt: skip
    assert budget.calls == [("reserve", 350), ("settle", Usage(100, 7))]


def test_a_failed_generation_is_settled(index_dir: Path) -> None:
    budget = RecordingBudget()
    service = _service(index_dir, ScriptedGenerator(fail=True))
    answer = asyncio.run(service.ask("How do I batch requests?", 2, budget=budget))
    assert answer.status == "degraded"
    assert [c[0] for c in budget.calls] == ["reserve", "settle"]
    assert budget.calls[1] == ("settle", Usage())  # the engine produced nothing


def test_a_stream_closed_by_the_client_is_settled_for_what_it_produced(index_dir: Path) -> None:
    budget = RecordingBudget()
    generator = EndlessWords()
    service = _service(index_dir, generator)

    async def read_three_then_leave() -> None:
        events = service.ask_stream("batching", 2, budget=budget)
        for _ in range(3):
            assert isinstance(await anext(events), AnswerToken)
        await events.aclose()

    asyncio.run(read_three_then_leave())
    assert generator.closed
    kinds = [c[0] for c in budget.calls]
    assert kinds == ["reserve", "settle"]
    settled = budget.calls[1][1]
    assert isinstance(settled, Usage) and settled.prompt == 300 and settled.completion >= 3


def test_a_refused_reservation_stops_before_the_engine_is_called(index_dir: Path) -> None:
    budget = RecordingBudget(refuse=True)
    generator = ScriptedGenerator()
    service = _service(index_dir, generator)
    with pytest.raises(RateLimitedError):
        asyncio.run(service.ask("How do I batch requests?", 2, budget=budget))
    assert generator.last_messages == [] and [c[0] for c in budget.calls] == ["reserve"]


def test_unknown_collection_is_rejected_with_the_served_ones(index_dir: Path) -> None:
    from utils.errors import RequestRejectedError

    service = _service(index_dir, ScriptedGenerator())
    with pytest.raises(RequestRejectedError, match="served: docs"):
        asyncio.run(service.search("batching", 2, collection="other"))
