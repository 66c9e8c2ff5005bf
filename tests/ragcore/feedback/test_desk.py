"""The feedback desk: buffered answer records, ratings that wait for their record, timeouts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ragcore.feedback.desk import FeedbackDesk, local_ledger
from ragcore.feedback.ledger import SqliteFeedback
from ragcore.feedback.records import AnswerRecord, Feedback
from utils.errors import NotFoundError, RequestRejectedError, UnavailableError
from utils.feedback_settings import FeedbackSettings

RECORD = AnswerRecord("r1", "acme", "ask", "docs", "main@1", "q", "a")


def _desk(tmp_path: Path, **settings: Any) -> FeedbackDesk:
    ledger = SqliteFeedback(tmp_path / "feedback.db")

    return FeedbackDesk(local_ledger(ledger), FeedbackSettings(**settings))


def test_a_rating_before_the_record_is_written_waits_for_it(tmp_path: Path) -> None:
    desk = _desk(tmp_path, flush_s=0.01, max_comment_chars=12)

    async def run() -> Any:
        desk.answered(RECORD)  # buffered, not yet written
        return await desk.rate(Feedback("r1", "acme", "k", "down", "the sources are old"))

    outcome = asyncio.run(run())
    assert outcome.variant == "main@1" and outcome.queued
    (item,) = asyncio.run(desk.queue(None, "pending", 10))
    assert item.comment == "the sources "  # cut to max_comment_chars


def test_unknown_answers_ambiguous_ids_and_a_silent_store_are_clear_errors(
    tmp_path: Path,
) -> None:
    desk = _desk(tmp_path, flush_s=0.01, store_timeout_s=0.05)
    with pytest.raises(NotFoundError, match="no answer with request_id 'nope'"):
        asyncio.run(desk.rate(Feedback("nope", "acme", "k", "up")))
    desk.answered(AnswerRecord("r1", "acme", "ask", "docs", "v@1", "q", reasons=("refused",)))
    desk.answered(AnswerRecord("r1", "globex", "ask", "docs", "v@1", "q", reasons=("refused",)))
    asyncio.run(desk.log.flush())
    with pytest.raises(RequestRejectedError, match="more than one tenant"):
        asyncio.run(desk.mark(None, "r1", "ops", ""))
    assert asyncio.run(desk.mark("globex", "r1", "ops", "ok")).reviewer == "ops"

    async def silent(method: str, *args: Any) -> None:
        await asyncio.sleep(1)

    desk.call = silent
    with pytest.raises(UnavailableError, match="feedback store did not answer"):
        asyncio.run(desk.rate(Feedback("r1", "acme", "k", "up")))


def test_a_failed_write_keeps_the_records_for_the_next(tmp_path: Path) -> None:
    desk = _desk(tmp_path)
    working = desk.call

    async def down(method: str, *args: Any) -> None:
        raise ConnectionError("actor restarting")

    desk.call = down
    desk.answered(RECORD)
    asyncio.run(desk.log.flush())
    desk.call = working
    asyncio.run(desk.log.flush())
    assert asyncio.run(desk.rate(Feedback("r1", "acme", "k", "up"))).variant == "main@1"


def test_warm_up_waits_for_a_starting_ledger_and_gives_up_on_a_dead_one(tmp_path: Path) -> None:
    desk = _desk(tmp_path, store_timeout_s=0.05)
    answer = desk.call
    calls: list[str] = []

    async def starting(method: str, *args: Any) -> Any:
        calls.append(method)
        if len(calls) < 3:  # the actor is still starting: calls time out
            await asyncio.sleep(1)
        return await answer(method, *args)

    desk.call = starting
    assert desk.state == "warming"
    asyncio.run(desk.warm_up())
    assert desk.state == "ready" and calls == ["pending"] * 3

    dead = _desk(tmp_path, store_timeout_s=0.01)

    async def refused(method: str, *args: Any) -> Any:
        raise ConnectionError("actor died")

    dead.call = refused
    asyncio.run(dead.warm_up())
    assert dead.state == "unavailable"
