"""The HTTP API: routes by feature, a dependency for the service, error handlers, middleware
and schemas, assembled by `create_app`. It maps the service's domain objects to HTTP."""

from __future__ import annotations

from fastapi import FastAPI

from deployments.api.errors import install_error_handlers
from deployments.api.middleware import RequestIdOf, header_request_id, install_middleware
from deployments.api.routes import ask, feedback, health, openai, search, usage, variants
from deployments.api.routes.ui import install_ui
from ragcore.metrics import MetricsSink, NullMetrics
from ragcore.service import RAGService
from ragcore.tenancy.gate import TenantGate


def create_app(
    service: RAGService,
    metrics: MetricsSink | None = None,
    request_id_of: RequestIdOf = header_request_id,
    echo_request_id: bool = True,
    gate: TenantGate | None = None,
) -> FastAPI:
    """The FastAPI app over a `RAGService`; `gate` None serves without API keys."""
    app = FastAPI(
        title="ray-rag",
        description="Search and grounded answers over a documentation index, on Ray Serve.",
        version="0.2.0",
    )
    app.state.service = service
    app.state.gate = gate
    install_middleware(app, service.settings.max_body_bytes, metrics or NullMetrics(),
                       request_id_of, echo_request_id)  # fmt: skip
    install_error_handlers(app)
    for module in (health, search, ask, openai, usage, variants, feedback):
        app.include_router(module.router)
    install_ui(app)
    return app
