"""Which variant serves a request: sticky by tenant and user, or forced by a permitted key."""

from __future__ import annotations

from fastapi import Request

from ragcore.service import RAGService
from ragcore.tenancy.gate import Caller
from ragcore.variants.routing import Route
from utils.errors import RequestRejectedError
from utils.logs import request_id_var, variant_var

USER_HEADER = "x-user-id"
FORCE_HEADER = "x-variant"
MAX_USER_ID = 256


def route_for(request: Request, caller: Caller | None) -> Route:
    """The request's variant. Sticky by a hash of tenant and user (X-User-ID, else the key;
    without auth, X-User-ID, else the request is routed on its own). X-Variant picks one for a
    key with a scope in `variants.force_scopes` (any caller when auth is disabled): 403
    otherwise, 422 for an unknown name."""
    service: RAGService = request.app.state.service
    user = request.headers.get(USER_HEADER, "")
    if len(user) > MAX_USER_ID:
        raise RequestRejectedError(f"X-User-ID is longer than {MAX_USER_ID} characters")
    if caller is None:
        tenant, who, may_force = "", user or request_id_var.get(), True
    else:
        principal = caller.principal
        tenant, who = principal.tenant, user or principal.key_id
        may_force = any(principal.may(s) for s in service.experiments.settings.force_scopes)
    route = service.experiments.route(f"{tenant}\x00{who}", request.headers.get(FORCE_HEADER),
                                      may_force)  # fmt: skip
    request.state.variant = route.variant.label
    variant_var.set(route.variant.label)
    return route
