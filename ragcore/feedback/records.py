"""What is kept of an answer for feedback and review, and why an answer needs a human."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ragcore.protocols import Answer
from utils.feedback_settings import FeedbackSettings

Rating = Literal["up", "down"]
SNIPPET_CHARS = 300  # of each source: enough for a reviewer to judge what was retrieved


@dataclass(frozen=True)
class AnswerRecord:
    """One answered (or refused) request as a reviewer sees it. The question is the screened
    one: PII is redacted before it is stored, as before it is logged."""

    request_id: str
    tenant: str
    route: str
    collection: str
    variant: str
    question: str
    answer: str = ""
    sources: tuple[dict[str, Any], ...] = ()
    mode: str = "refused"
    path: str = "none"
    validation_reasons: tuple[str, ...] = ()
    refusal: str = ""  # a guard's reason code, or the answer's refusal message
    reasons: tuple[str, ...] = ()  # why it is queued for review ("" none)
    ts: float = field(default_factory=time.time)

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready dict (the store's body column)."""
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AnswerRecord:
        """The record `to_row` wrote."""
        tuples = ("sources", "validation_reasons", "reasons")
        fields: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in row.items()}
        return cls(**fields)


@dataclass(frozen=True)
class Feedback:
    """A user's rating of one answer, from the tenant of the key that sent it."""

    request_id: str
    tenant: str
    key_id: str
    rating: Rating
    comment: str = ""
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True)
class FeedbackOutcome:
    """A stored rating: the variant that answered, and whether the answer now awaits review."""

    variant: str
    queued: bool


@dataclass(frozen=True)
class ReviewItem:
    """An answer in the review queue, with its rating and the reviewer's verdict."""

    record: AnswerRecord
    reasons: tuple[str, ...]
    queued_at: float
    rating: str = ""
    comment: str = ""
    reviewed_at: float | None = None
    reviewer: str = ""
    note: str = ""


def answer_record(
    request_id: str,
    tenant: str,
    route: str,
    collection: str,
    question: str,
    answer: Answer,
    settings: FeedbackSettings,
) -> AnswerRecord:
    """The record of a finished answer, queued for review when it failed validation or was
    refused (as far as `settings.review_reasons` asks)."""
    failed = answer.validation is not None and not answer.validation.passed
    reasons = [r for r, hit in (("validation_failed", failed),
                                ("refused", answer.mode == "refused")) if hit]  # fmt: skip
    sources = tuple({"title": h.title, "source": h.source, "score": round(h.score, 4),
                     "snippet": h.content[:SNIPPET_CHARS]} for h in answer.sources)  # fmt: skip
    return AnswerRecord(
        request_id, tenant, route, collection, answer.variant, question,
        answer.text[: settings.max_answer_chars], sources, answer.mode, answer.path,
        answer.validation.reasons if answer.validation else (),
        answer.message if answer.mode == "refused" else "",
        tuple(r for r in reasons if r in settings.review_reasons),
    )  # fmt: skip


def refusal_record(
    request_id: str,
    tenant: str,
    route: str,
    collection: str,
    variant: str,
    question: str,
    reason: str,
    settings: FeedbackSettings,
) -> AnswerRecord:
    """The record of a question a guard refused (reason: its code)."""
    queued = ("refused",) if "refused" in settings.review_reasons else ()
    return AnswerRecord(request_id, tenant, route, collection, variant, question,
                        refusal=reason, reasons=queued)  # fmt: skip
