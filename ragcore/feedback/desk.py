"""Feedback and review for the service: answer records buffered per replica, ratings, the
review queue. The ledger behind it is reached through `LedgerCall`, so the same desk runs over
the head node's actor in Serve and over a local SqliteFeedback in tests and the CLI."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from ragcore.buffered_log import BufferedLog
from ragcore.feedback.ledger import ReviewStatus, SqliteFeedback, only_item
from ragcore.feedback.records import AnswerRecord, Feedback, FeedbackOutcome, ReviewItem
from ragcore.metrics import MetricsSink, NullMetrics
from utils.errors import NotFoundError, UnavailableError
from utils.feedback_settings import FeedbackSettings
from utils.logs import get_logger

log = get_logger("feedback")

# call(method_name, *args): one SqliteFeedback method, wherever the ledger lives.
LedgerCall = Callable[..., Awaitable[Any]]
WARMUP_CALLS = 30  # store timeouts a replica's warm-up waits for the ledger, at most


def local_ledger(ledger: SqliteFeedback) -> LedgerCall:
    """Calls on a ledger in this process, off the event loop."""

    def call(method: str, *args: Any) -> Awaitable[Any]:
        return asyncio.to_thread(getattr(ledger, method), *args)

    return call


class FeedbackDesk:
    """Records answers, takes ratings and serves the review queue. Every ledger call has the
    settings' timeout; a ledger that does not answer is a 503, never a lost rating."""

    def __init__(
        self,
        call: LedgerCall,
        settings: FeedbackSettings,
        metrics: MetricsSink | None = None,
    ) -> None:
        self.call = call
        self.settings = settings
        self.metrics = metrics or NullMetrics()
        self.log = BufferedLog(self._write, settings.flush_s, settings.store_timeout_s * 5,
                               lambda op: self.metrics.store_error("feedback_" + op),
                               "answer records")  # fmt: skip
        # "warming" until the ledger first answers, then "ready"; "unavailable" when it never
        # did within the warm-up (calls then answer 503 until it is back).
        self.state = "warming"

    async def warm_up(self) -> None:
        """Call the ledger until it answers: the first call waits for its actor to start, and
        a rating right after a deploy must not pay for that with a timeout. Gives up after
        WARMUP_CALLS store timeouts' worth of tries."""
        deadline = time.monotonic() + WARMUP_CALLS * self.settings.store_timeout_s
        while self.state == "warming":
            try:
                self.metrics.review_pending(await self._ledger("pending"))
                self.state = "ready"
            except UnavailableError:
                if time.monotonic() >= deadline:
                    self.state = "unavailable"
                else:
                    await asyncio.sleep(min(1.0, self.settings.store_timeout_s))

    def answered(self, record: AnswerRecord) -> None:
        """Keep an answer's record (written within flush_s) so it can be rated and reviewed."""
        for reason in record.reasons:
            self.metrics.review_queued(reason)
        self.log.add(record)

    async def _write(self, records: list[AnswerRecord]) -> None:
        self.metrics.review_pending(await self.call("record", records))

    async def _ledger(self, method: str, *args: Any) -> Any:
        try:
            return await asyncio.wait_for(self.call(method, *args), self.settings.store_timeout_s)
        except Exception as exc:  # a timeout, or the actor dead or restarting
            log.warning("feedback store call failed", extra={"op": method,
                                                             "error": repr(exc)[:200]})  # fmt: skip
            raise UnavailableError("the feedback store did not answer; try again") from exc

    async def rate(self, feedback: Feedback) -> FeedbackOutcome:
        """Store a rating of the tenant's answer `feedback.request_id`; NotFoundError (404)
        when the tenant has no such answer. An answer is recorded within flush_s of being
        sent, so a rating that arrives sooner waits for it once. The comment is stored as
        given (the service redacts it first), cut to max_comment_chars."""
        stored = replace(feedback, comment=feedback.comment[: self.settings.max_comment_chars])
        queue_down = "thumbs_down" in self.settings.review_reasons
        outcome = await self._ledger("rate", stored, queue_down)
        if outcome is None:
            await self.log.flush()  # this replica's own records first
            await asyncio.sleep(self.settings.flush_s)  # then the other replicas' next write
            outcome = await self._ledger("rate", stored, queue_down)
        if outcome is None:
            raise NotFoundError(f"no answer with request_id {feedback.request_id!r} for this "
                                "tenant (it is the X-Request-ID of an /ask response; answers "
                                f"are kept {self.settings.retain_days:g} days)")  # fmt: skip
        self.metrics.feedback(outcome.variant, feedback.rating)
        if feedback.rating == "down" and outcome.queued and queue_down:
            self.metrics.review_queued("thumbs_down")
        return outcome

    async def queue(
        self, tenant: str | None, status: ReviewStatus, limit: int, request_id: str | None = None
    ) -> list[ReviewItem]:
        """Review items (see SqliteFeedback.queue), this replica's buffered records included."""
        await self.log.flush()
        items: list[ReviewItem] = await self._ledger("queue", tenant, status, limit, request_id)
        return items

    async def mark(self, tenant: str | None, request_id: str, reviewer: str, note: str
                   ) -> ReviewItem:  # fmt: skip
        """Mark a queued answer reviewed. NotFoundError when it is not queued;
        RequestRejectedError when `tenant` is None and two tenants used the request id."""
        found = await self.queue(tenant, "all", 2, request_id)
        owner = only_item(found, request_id).record.tenant
        item: ReviewItem | None = await self._ledger("mark", owner, request_id, reviewer, note)
        if item is None:
            raise NotFoundError(f"no review item with request_id {request_id!r}")
        return item

    async def counts(self) -> dict[str, dict[str, int]]:
        """Ratings per variant, from the durable ledger."""
        await self.log.flush()
        counts: dict[str, dict[str, int]] = await self._ledger("counts")
        return counts

    async def run(self) -> None:
        """Write answer records every flush_s until cancelled."""
        await self.log.run()
