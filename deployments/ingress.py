"""The Ingress deployment: HTTP API, query embedding and retrieval in one replica.

A /search request crosses no DeploymentHandle hop after the proxy: the replica embeds (batched
across concurrent requests) and searches its own copy of the index. /ask makes one hop, to the
generator. With `remote_embedder`, embedding moves to the Embedder deployment (one hop).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.api import create_app
from deployments.embedder import RemoteQueryEmbedder
from deployments.generator import ServeLLMGenerator
from deployments.metrics import ServeMetrics
from deployments.tenant_store import build_tenant_store
from ragcore.embedding import LocalQueryEmbedder
from ragcore.guards.injection import InjectionDetector
from ragcore.guards.pii import PiiRedactor
from ragcore.guards.pipeline import GuardPipeline
from ragcore.index_manager import IndexManager
from ragcore.protocols import QueryEmbedder
from ragcore.search import SearchEngine
from ragcore.service import RAGService
from ragcore.tenancy.gate import TenantGate
from ragcore.token_count import PromptTokenCounter
from utils.logs import setup_logging
from utils.settings import ServiceSettings


def serve_request_id(request: Request) -> str:
    """The id Serve's proxy assigned (the client's X-Request-ID when it sent one)."""
    from ray.serve.context import _get_serve_request_context

    return _get_serve_request_context().request_id or request.headers.get("x-request-id") or ""


def build_guards(
    config: ServiceSettings, local: LocalQueryEmbedder | None, metrics: ServeMetrics
) -> GuardPipeline:
    """The guard pipeline; the injection head reads the encoder this replica already loaded
    (one of its own when queries are embedded remotely)."""
    encoder = local or LocalQueryEmbedder(config.embedding_model, config.embed_threads,
                                          config.embed_chunk_size)  # fmt: skip
    return GuardPipeline(config.guards, InjectionDetector(encoder.embed_now), PiiRedactor(),
                         metrics)  # fmt: skip


@serve.ingress()
class Ingress:
    """Thin Serve wrapper: wires the plain parts together and serves the FastAPI app."""

    def __init__(
        self,
        settings: dict[str, Any],
        generator: DeploymentHandle | None = None,
        embedder: DeploymentHandle | None = None,
    ) -> None:
        setup_logging()
        config = ServiceSettings.model_validate(settings)
        self.metrics = ServeMetrics()
        query_embedder: QueryEmbedder
        local: LocalQueryEmbedder | None = None
        if embedder is not None:
            query_embedder = RemoteQueryEmbedder(embedder, config.embedding_model,
                                                 config.call_timeout_s)  # fmt: skip
        else:
            local = LocalQueryEmbedder(
                config.embedding_model, config.embed_threads, config.embed_chunk_size
            )
            local.embed_now(["warm up"])  # the first forward pass pays torch's lazy set-up
            query_embedder = local
        # One index manager per collection, each following its own CURRENT. Load before the
        # replica takes traffic: a replica that Serve adds or replaces must not answer 503
        # "index not loaded" while its peers serve (the app may also start before any index
        # exists; then the watcher loads the first one).
        self.indexes = {name: IndexManager(config.for_collection(name))
                        for name in config.collection_names()}  # fmt: skip
        self.index = self.indexes[config.default_collection]
        engines = {}
        for name, manager in self.indexes.items():
            manager.refresh()
            engines[name] = SearchEngine(query_embedder, manager, config.search_batch_size,
                                         config.call_timeout_s, self.metrics)  # fmt: skip
        llm = ServeLLMGenerator(generator, config.generator) if generator is not None else None
        count = PromptTokenCounter(config.generator.model_source)
        guards = build_guards(config, local, self.metrics) if config.guards.enabled else None
        default = engines.pop(config.default_collection)
        self.service = RAGService(default, llm, config, self.metrics, collections=engines,
                                  count_tokens=count, guards=guards)  # fmt: skip
        self.gate = None
        if config.auth.enabled:
            store = build_tenant_store(config.auth)
            self.gate = TenantGate(store, config.auth, config.default_collection, self.metrics)
        loop = asyncio.get_event_loop()
        self._watchers = [loop.create_task(m.watch()) for m in self.indexes.values()]
        self._warmup = loop.create_task(self.service.warm_up())
        self._flusher = loop.create_task(self.gate.run_flusher()) if self.gate else None

    def __serve_build_asgi_app__(self) -> FastAPI:
        """Serve calls this after __init__: the routes use this replica's service."""
        return create_app(self.service, self.metrics, request_id_of=serve_request_id,
                          echo_request_id=False, gate=self.gate)  # fmt: skip

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Hot settings from Serve's `user_config`; swaps without downtime."""
        self.index.reconfigure(user_config)

    async def check_health(self) -> None:
        """Unhealthy when an index watcher or the usage flusher died (Serve then replaces the
        replica)."""
        if any(w.done() for w in self._watchers):
            raise RuntimeError("index watcher stopped")
        if self._flusher is not None and self._flusher.done():
            raise RuntimeError("usage flusher stopped")

    async def __del__(self) -> None:
        """Serve calls this on shutdown: write the usage records still buffered."""
        if self.gate is not None:
            await self.gate.flush()
