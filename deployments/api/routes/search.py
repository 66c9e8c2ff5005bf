"""Hybrid search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from deployments.api.auth import SearchCaller, admitted, collection_for, tenant_of
from deployments.api.dependencies import RequestIdDep, ServiceDep
from deployments.api.responses import BODY_ROUTE, QUERY_ROUTE
from deployments.api.schemas import SearchParams, SearchRequest, SearchResponse, to_hit
from deployments.api.variants import route_for

router = APIRouter(tags=["search"])


async def _search(
    req: SearchParams, service: ServiceDep, request_id: str, request: Request, caller: SearchCaller
) -> SearchResponse:
    collection = collection_for(request, caller, req.collection)
    variant = route_for(request, caller).variant
    outcome = await service.search(req.query, req.k, collection=collection, variant=variant,
                                   tenant=tenant_of(caller))  # fmt: skip
    await admitted(request, caller)
    hits = [to_hit(h) for h in outcome.hits]
    return SearchResponse(results=hits, message="" if hits else "no results",
                          request_id=request_id, variant=variant.label)  # fmt: skip


@router.get("/search", response_model=SearchResponse, summary="Hybrid search",
            responses=QUERY_ROUTE)  # fmt: skip
async def search_get(
    params: Annotated[SearchParams, Query()],
    service: ServiceDep,
    request_id: RequestIdDep,
    request: Request,
    caller: SearchCaller,
) -> SearchResponse:
    return await _search(params, service, request_id, request, caller)


@router.post("/search", response_model=SearchResponse, summary="Hybrid search (JSON body)",
             responses=BODY_ROUTE)  # fmt: skip
async def search_post(
    req: SearchRequest,
    service: ServiceDep,
    request_id: RequestIdDep,
    request: Request,
    caller: SearchCaller,
) -> SearchResponse:
    return await _search(req, service, request_id, request, caller)
