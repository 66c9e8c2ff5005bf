"""Authentication, scopes and admission as FastAPI dependencies.

A route declares the scope it needs: `caller: Annotated[Caller | None, Depends(require("ask"))]`.
The dependency reads the key (`Authorization: Bearer` or `X-API-Key`), checks it and its scope
and counts the request against the limits; it returns None when auth is disabled. The schemes
are declared so the OpenAPI schema shows them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ragcore.tenancy.gate import Caller, CallerBudget, TenantGate

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key.")


def get_gate(request: Request) -> TenantGate | None:
    """The app's tenant gate; None when auth is disabled."""
    gate: TenantGate | None = getattr(request.app.state, "gate", None)
    return gate


def require(
    scope: str, admit: bool = True, stream: bool = False
) -> Callable[..., Awaitable[Caller | None]]:
    """A dependency: the authenticated caller holding `scope`, admitted by the request
    limits (with a stream lease when `stream`). 401, 403, 429 or 503 otherwise."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        header_key: Annotated[str | None, Depends(api_key_header)],
    ) -> Caller | None:
        gate = get_gate(request)
        if gate is None:
            return None
        secret = credentials.credentials if credentials is not None else header_key
        principal = await gate.authenticate(secret)
        caller = gate.caller(principal)
        request.state.caller = caller  # accounted by the middleware, whatever happens next
        gate.authorize(principal, scope)
        if admit:  # routes await `admitted(request, caller)` before they answer
            await gate.start_admission(caller, stream)
        return caller

    return dependency


async def admitted(request: Request, caller: Caller | None) -> None:
    """Wait for the caller's admission if it ran beside the route's work (429 or 503)."""
    gate = get_gate(request)
    if gate is not None and caller is not None:
        await gate.admitted(caller)


def collection_for(request: Request, caller: Caller | None, requested: str | None) -> str | None:
    """The collection a request reads, checked against the caller's key (403 outside it)."""
    gate = get_gate(request)
    if gate is None or caller is None:
        return requested
    caller.collection = gate.collection(caller.principal, requested)
    return caller.collection


def tenant_of(caller: Caller | None) -> str | None:
    """The caller's tenant (its guard settings); None when auth is disabled."""
    return None if caller is None else caller.principal.tenant


def budget_for(request: Request, caller: Caller | None) -> CallerBudget | None:
    """The token budget of the caller's request; None when auth is disabled."""
    gate = get_gate(request)
    return None if gate is None or caller is None else CallerBudget(gate, caller)


SearchCaller = Annotated[Caller | None, Depends(require("search"))]
AskCaller = Annotated[Caller | None, Depends(require("ask"))]
StreamCaller = Annotated[Caller | None, Depends(require("ask", stream=True))]
ChatCaller = Annotated[Caller | None, Depends(require("chat", admit=False))]
UsageCaller = Annotated[Caller | None, Depends(require("usage"))]
AdminCaller = Annotated[Caller | None, Depends(require("admin"))]
