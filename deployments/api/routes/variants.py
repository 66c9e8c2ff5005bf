"""Variant state for operators: shares, rollbacks and breakers; resetting a rolled-back canary."""

from __future__ import annotations

from fastapi import APIRouter, Path, Request
from starlette.exceptions import HTTPException

from deployments.api.auth import AdminCaller, admitted
from deployments.api.dependencies import ServiceDep
from deployments.api.responses import AUTH, INTERNAL, INVALID, OVERLOADED, UNAVAILABLE, responses
from deployments.api.schemas import ErrorResponse, VariantsResponse, VariantState
from ragcore.service import RAGService
from utils.auth_settings import NAME_RE

router = APIRouter(prefix="/admin", tags=["variants"])
NOT_FOUND = {404: {"model": ErrorResponse, "description": "No such variant."}}


def _state(service: RAGService) -> VariantsResponse:
    return VariantsResponse(variants=[VariantState(**v) for v in service.experiments.state()],
                            breakers=service.engines.states(),
                            baseline=service.experiments.baseline().name)  # fmt: skip


@router.get("/variants", response_model=VariantsResponse, summary="Variants and breakers now",
            responses=responses(AUTH, INVALID, OVERLOADED, INTERNAL, UNAVAILABLE))  # fmt: skip
async def variants(request: Request, service: ServiceDep, caller: AdminCaller) -> VariantsResponse:
    """Each variant's configured weight, live share, rollback reason and window figures, and
    each engine's breaker state (this replica's view; rollbacks are shared)."""
    await admitted(request, caller)
    return _state(service)


@router.post("/variants/{name}/reset", response_model=VariantsResponse,
             summary="Serve a rolled-back canary again",
             responses=responses(AUTH, NOT_FOUND, INVALID, OVERLOADED, INTERNAL,
                                 UNAVAILABLE))  # fmt: skip
async def reset(
    request: Request,
    service: ServiceDep,
    caller: AdminCaller,
    name: str = Path(pattern=NAME_RE.pattern, description="The variant's name."),
) -> VariantsResponse:
    """Clear a canary's rollback on every replica: an explicit decision after a fix. Promotion
    is a config change (its weight, or making it the baseline) through `serve deploy`."""
    await admitted(request, caller)
    if name not in service.experiments.settings.by_name():
        raise HTTPException(404, f"no variant named {name!r}")
    await service.experiments.reset(name)
    return _state(service)
