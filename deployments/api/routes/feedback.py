"""User feedback on answers, and the human-review queue for operators."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request

from deployments.api.auth import AdminCaller, AskCaller, admitted
from deployments.api.dependencies import ServiceDep
from deployments.api.responses import (
    AUTH,
    BODY_ROUTE,
    INTERNAL,
    INVALID,
    OVERLOADED,
    UNAVAILABLE,
    responses,
)
from deployments.api.review_schemas import (
    MAX_REQUEST_ID_CHARS,
    FeedbackCountsResponse,
    FeedbackRequest,
    FeedbackResponse,
    ReviewMark,
    ReviewQueueResponse,
    to_review_entry,
)
from deployments.api.schemas import ErrorResponse
from ragcore.feedback.desk import FeedbackDesk
from ragcore.feedback.records import Feedback
from ragcore.service import RAGService
from utils.auth_settings import NAME_RE
from utils.errors import NotFoundError

router = APIRouter(tags=["feedback"])
NOT_FOUND = {
    404: {"model": ErrorResponse, "description": "No such answer for this tenant, or no such "
          "review item, or feedback is disabled."}
}  # fmt: skip
ONE_REQUEST = Query(min_length=1, max_length=MAX_REQUEST_ID_CHARS,
                    description="Only the item of this request id.")  # fmt: skip
ADMIN = responses(AUTH, NOT_FOUND, INVALID, OVERLOADED, INTERNAL, UNAVAILABLE)


def _desk(service: RAGService) -> FeedbackDesk:
    if service.feedback is None:
        raise NotFoundError("feedback is disabled on this service (feedback.enabled: false)")
    return service.feedback


@router.post("/feedback", response_model=FeedbackResponse, summary="Rate an answer",
             responses=responses(BODY_ROUTE, NOT_FOUND))  # fmt: skip
async def feedback(
    req: FeedbackRequest, request: Request, service: ServiceDep, caller: AskCaller
) -> FeedbackResponse:
    """Thumbs up or down on one of the tenant's answers, by its request id. Stored durably and
    counted for the variant that answered; a thumbs-down queues the answer for review. A
    later rating of the same answer replaces the earlier one."""
    tenant = caller.principal.tenant if caller is not None else ""
    key_id = caller.principal.key_id if caller is not None else ""
    outcome = await service.rate(Feedback(req.request_id, tenant, key_id, req.rating,
                                          req.comment or ""))  # fmt: skip
    await admitted(request, caller)
    return FeedbackResponse(request_id=req.request_id, rating=req.rating,
                            variant=outcome.variant, queued_for_review=outcome.queued)  # fmt: skip


@router.get("/admin/review", response_model=ReviewQueueResponse, summary="The review queue",
            responses=ADMIN)  # fmt: skip
async def review_queue(
    request: Request,
    service: ServiceDep,
    caller: AdminCaller,
    status: Annotated[Literal["pending", "reviewed", "all"], Query()] = "pending",
    tenant: Annotated[str | None, Query(pattern=NAME_RE.pattern)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    request_id: Annotated[str | None, ONE_REQUEST] = None,
) -> ReviewQueueResponse:
    """Answers that failed validation, were refused or got a thumbs-down, with question,
    sources and answer: pending ones oldest first, otherwise newest first."""
    await admitted(request, caller)
    items = await _desk(service).queue(tenant, status, limit, request_id)
    return ReviewQueueResponse(items=[to_review_entry(i) for i in items])


@router.post("/admin/review/{request_id}", response_model=ReviewQueueResponse,
             summary="Mark a queued answer reviewed",
             responses=responses(BODY_ROUTE, NOT_FOUND))  # fmt: skip
async def mark_reviewed(
    mark: ReviewMark,
    request: Request,
    service: ServiceDep,
    caller: AdminCaller,
    request_id: str = Path(min_length=1, max_length=MAX_REQUEST_ID_CHARS),
    tenant: Annotated[str | None, Query(pattern=NAME_RE.pattern)] = None,
) -> ReviewQueueResponse:
    """Record the reviewer (the admin key) and a note; a later thumbs-down re-opens it."""
    await admitted(request, caller)
    reviewer = caller.principal.key_id if caller is not None else "anonymous"
    item = await _desk(service).mark(tenant, request_id, reviewer, mark.note)
    return ReviewQueueResponse(items=[to_review_entry(item)])


@router.get("/admin/feedback", response_model=FeedbackCountsResponse,
            summary="Ratings per variant", responses=ADMIN)  # fmt: skip
async def feedback_counts(
    request: Request, service: ServiceDep, caller: AdminCaller
) -> FeedbackCountsResponse:
    """Thumbs up and down per variant, from the durable ledger (all replicas, all time)."""
    await admitted(request, caller)
    return FeedbackCountsResponse(variants=await _desk(service).counts())
