"""FastAPI dependencies: the service behind the routes, and the request id."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ragcore.service import RAGService
from utils.logs import request_id_var


def get_service(request: Request) -> RAGService:
    """The `RAGService` this app was created with (tests may swap `app.state.service`)."""
    service: RAGService = request.app.state.service
    return service


def get_request_id() -> str:
    """The id of the request being served (set by the middleware)."""
    return request_id_var.get()


ServiceDep = Annotated[RAGService, Depends(get_service)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
