"""A tenant's own usage; an admin key may read any tenant's."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.exceptions import HTTPException

from deployments.api.auth import UsageCaller, admitted, get_gate
from deployments.api.dependencies import RequestIdDep
from deployments.api.responses import (
    AUTH,
    INTERNAL,
    INVALID,
    OVERLOADED,
    UNAVAILABLE,
    responses,
)
from deployments.api.schemas import ErrorResponse, UsageResponse, to_usage_days
from ragcore.tenancy.keys import astuple
from ragcore.tenancy.limiter import DAY
from ragcore.tenancy.sqlite_ledger import day_label
from utils.auth_settings import NAME_RE
from utils.errors import ForbiddenError

router = APIRouter(prefix="/v1", tags=["tenants"])
NOT_FOUND = {404: {"model": ErrorResponse, "description": "Auth is disabled: no tenants."}}
LIMIT_NAMES = ("rpm", "tokens_per_minute", "tokens_per_day", "max_streams")


@router.get("/usage", response_model=UsageResponse, summary="Your usage and limits",
            responses=responses(AUTH, NOT_FOUND, INVALID, OVERLOADED, INTERNAL,
                                UNAVAILABLE))  # fmt: skip
async def usage(
    request: Request,
    caller: UsageCaller,
    request_id: RequestIdDep,
    days: Annotated[int, Query(ge=1, le=366, description="UTC days back, today included.")] = 7,
    tenant: Annotated[
        str | None,
        Query(pattern=NAME_RE.pattern, description="Another tenant (needs the admin scope)."),
    ] = None,
) -> UsageResponse:
    gate = get_gate(request)
    if gate is None or caller is None:
        raise HTTPException(404, "auth is disabled in this deployment: there are no tenants")
    await admitted(request, caller)
    who = caller.principal.tenant
    if tenant is not None and tenant != who:
        if not caller.principal.may("admin"):
            raise ForbiddenError("reading another tenant's usage needs the 'admin' scope")
        who = tenant
    since = day_label(time.time() - (days - 1) * DAY)
    rows = await gate.usage(who, since)
    own = who == caller.principal.tenant
    subjects = caller.subjects if own else []
    return UsageResponse(
        tenant=who,
        since=since,
        days=to_usage_days(rows),
        requests=sum(r.requests for r in rows),
        prompt_tokens=sum(r.prompt_tokens for r in rows),
        completion_tokens=sum(r.completion_tokens for r in rows),
        limits={s.name: dict(zip(LIMIT_NAMES, astuple(s.limits), strict=True)) for s in subjects},
        current=await gate.snapshot(caller) if own else {},
        request_id=request_id,
    )
