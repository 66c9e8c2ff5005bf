"""The Serve application: Ingress -> (Embedder, Retriever, Generator).

`serve run deployments.app:build_app` and `serve deploy serve_config.yaml` both call
`build_app(args)`; `args` is validated by `ServiceSettings`, the same model the Python API uses.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from ray import serve
from ray.serve.deployment import Application
from ray.serve.handle import DeploymentHandle

from deployments.embedder import EmbedderDeployment
from deployments.generator import ServeLLMGenerator, build_llm_app
from deployments.ingress import create_app
from deployments.metrics import ServeMetrics
from deployments.protocols import QueryEmbedding, Readiness, SearchOutcome
from deployments.rag_service import RAGService
from deployments.retriever import RetrieverDeployment
from utils.logs import setup_logging
from utils.settings import ServiceSettings


def _serve_request_id(request: Request) -> str:
    """The id Serve's proxy assigned (the client's X-Request-ID when it sent one)."""
    from ray.serve.context import _get_serve_request_context

    return _get_serve_request_context().request_id or request.headers.get("x-request-id") or ""


class _EmbedderHandle:
    """`Embedder` over a DeploymentHandle (the timeout lives in RAGService)."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle

    async def embed(self, text: str) -> QueryEmbedding:
        result: QueryEmbedding = await self.handle.embed.remote(text)
        return result


class _RetrieverHandle:
    """`Retriever` over a DeploymentHandle."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle

    async def search(self, query: str, embedding: QueryEmbedding, k: int) -> SearchOutcome:
        result: SearchOutcome = await self.handle.search.remote(query, embedding, k)
        return result

    async def readiness(self) -> Readiness:
        result: Readiness = await self.handle.readiness.remote()
        return result


@serve.deployment(name="Ingress")
@serve.ingress()
class IngressDeployment:
    """Thin Serve wrapper: builds the plain RAGService from handles and serves the FastAPI app."""

    def __init__(
        self,
        settings: dict[str, Any],
        embedder: DeploymentHandle,
        retriever: DeploymentHandle,
        generator: DeploymentHandle | None,
    ) -> None:
        setup_logging()
        config = ServiceSettings.model_validate(settings)
        metrics = ServeMetrics()
        llm = ServeLLMGenerator(generator, config.generator) if generator is not None else None
        self.config = config
        self.metrics = metrics
        self.service = RAGService(
            _EmbedderHandle(embedder), _RetrieverHandle(retriever), llm, config, metrics
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        """Serve calls this after __init__: the routes close over this replica's service."""
        return create_app(
            lambda: self.service,
            self.config.max_body_bytes,
            self.metrics,
            request_id_of=_serve_request_id,
            echo_request_id=False,
        )


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Application builder for `serve run` / `serve deploy` and serve_index.py."""
    config = ServiceSettings.model_validate(args or {})
    payload = config.model_dump(mode="json")
    embedder = EmbedderDeployment.bind(payload)  # type: ignore[attr-defined]
    retriever = RetrieverDeployment.options(  # type: ignore[attr-defined]
        user_config={"index_version": config.index_version}
    ).bind(payload)
    generator = build_llm_app(config.generator) if config.generator.enabled else None
    return IngressDeployment.bind(  # type: ignore[attr-defined]
        payload, embedder, retriever, generator
    )
