"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from deployments.api.dependencies import ServiceDep
from deployments.api.responses import INTERNAL, responses
from deployments.api.schemas import Readyz

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive", responses=responses(INTERNAL))
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Index loaded and generator warm (503 with the reason otherwise)",
    response_model=Readyz,
    responses=responses(INTERNAL, {503: {"model": Readyz, "description": "Not ready yet."}}),
)
async def readyz(service: ServiceDep) -> JSONResponse:
    state = await service.readiness()
    body = {"ready": state.ready, "reason": state.reason, **state.details}
    return JSONResponse(body, status_code=200 if state.ready else 503)
