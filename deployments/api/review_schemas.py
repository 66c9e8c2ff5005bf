"""Request and response bodies of feedback and the review queue."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ragcore.feedback.records import ReviewItem

MAX_REQUEST_ID_CHARS = 128  # the middleware keeps this much of an X-Request-ID


class FeedbackRequest(BaseModel):
    """POST /feedback: a rating of one answer."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(
        min_length=1, max_length=MAX_REQUEST_ID_CHARS,
        description="The answer's request id: `request_id` of the /ask body (or its "
        "X-Request-ID header).",
    )  # fmt: skip
    rating: Literal["up", "down"] = Field(description="Thumbs up or down.")
    comment: str | None = Field(
        default=None, max_length=4000,  # 4 bytes a character stays under max_body_bytes
        description="Free text; PII is redacted and it is cut to feedback.max_comment_chars.",
    )  # fmt: skip


class FeedbackResponse(BaseModel):
    """A stored rating."""

    request_id: str
    rating: Literal["up", "down"]
    variant: str = Field(description="The variant that gave the answer (name@version).")
    queued_for_review: bool = Field(description="Whether the answer now awaits review.")


class ReviewSource(BaseModel):
    """A retrieved chunk as the reviewer sees it."""

    title: str
    source: str
    score: float
    snippet: str


class ReviewEntry(BaseModel):
    """One answer in the review queue."""

    request_id: str
    tenant: str
    route: str
    collection: str
    variant: str
    reasons: list[str] = Field(description="validation_failed, refused, thumbs_down.")
    question: str = Field(description="As screened: PII is redacted before it is stored.")
    answer: str
    answer_mode: str
    answer_path: str
    validation_reasons: list[str]
    refusal: str = Field(description="A guard's reason code, or the refusal message.")
    sources: list[ReviewSource]
    rating: Literal["", "up", "down"]
    comment: str
    answered_at: float
    queued_at: float
    reviewed_at: float | None
    reviewer: str
    note: str


class ReviewQueueResponse(BaseModel):
    """GET /admin/review."""

    items: list[ReviewEntry]


class ReviewMark(BaseModel):
    """POST /admin/review/{request_id}: the reviewer's verdict."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=4000, description="What was found or done.")


class FeedbackCountsResponse(BaseModel):
    """GET /admin/feedback: ratings per variant, from the durable ledger."""

    variants: dict[str, dict[str, int]] = Field(
        description='{"name@version": {"up": n, "down": n}}.'
    )


def to_review_entry(item: ReviewItem) -> ReviewEntry:
    """A domain review item as the API returns it."""
    r = item.record
    sources: list[dict[str, Any]] = list(r.sources)
    return ReviewEntry(
        request_id=r.request_id, tenant=r.tenant, route=r.route, collection=r.collection,
        variant=r.variant, reasons=list(item.reasons), question=r.question, answer=r.answer,
        answer_mode=r.mode, answer_path=r.path, validation_reasons=list(r.validation_reasons),
        refusal=r.refusal, sources=[ReviewSource(**s) for s in sources],
        rating=item.rating or "", comment=item.comment, answered_at=r.ts,  # type: ignore[arg-type]
        queued_at=item.queued_at, reviewed_at=item.reviewed_at, reviewer=item.reviewer,
        note=item.note,
    )  # fmt: skip
