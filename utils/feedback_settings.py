"""Settings of user feedback and the review queue: one model for the service and the CLI."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ReviewReason = Literal["validation_failed", "refused", "thumbs_down"]
REVIEW_REASONS: tuple[ReviewReason, ...] = ("validation_failed", "refused", "thumbs_down")


class FeedbackSettings(BaseModel):
    """Answer records for feedback, and what goes into the human-review queue. Stored durably
    in SQLite (`feedback.db` under auth.state_dir, on the head node) whatever auth.store is:
    a review queue must survive a Redis without persistence too."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Record answers; serve POST /feedback.")
    review_reasons: tuple[ReviewReason, ...] = Field(
        default=REVIEW_REASONS,
        description="What queues an answer for review: it failed validation, it was refused "
        "(a guard, a leak, or nothing relevant retrieved), or a user gave it a thumbs-down.",
    )  # fmt: skip
    flush_s: float = Field(
        default=0.5, gt=0, le=60, description="How often a replica writes its answer records."
    )
    retain_days: float = Field(
        default=30.0, gt=0, le=3650,
        description="Answers neither queued nor rated are deleted after this (feedback on "
        "them is then refused as unknown).",
    )  # fmt: skip
    max_comment_chars: int = Field(default=2000, ge=1, le=4000, description="Comment bound.")
    max_answer_chars: int = Field(
        default=8000, ge=100, le=100_000, description="Stored answer text bound."
    )
    store_timeout_s: float = Field(default=2.0, gt=0, le=60, description="Per store call.")
