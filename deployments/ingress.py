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
from deployments.feedback_store import actor_ledger
from deployments.generator import ServeLLMGenerator
from deployments.metrics import ServeMetrics
from deployments.state_store import build_cache_store
from deployments.tenant_store import build_tenant_store
from ragcore.cache.answer_cache import AnswerCache
from ragcore.embedding import LocalQueryEmbedder, query_embedder_for
from ragcore.feedback.desk import FeedbackDesk
from ragcore.guards.injection import InjectionDetector
from ragcore.guards.pii import PiiRedactor
from ragcore.guards.pipeline import GuardPipeline
from ragcore.index_manager import IndexManager
from ragcore.protocols import QueryEmbedder
from ragcore.search import SearchEngine
from ragcore.service import RAGService
from ragcore.tenancy.gate import TenantGate
from ragcore.token_count import PromptTokenCounter
from ragcore.variants.experiments import Experiments
from utils.logs import get_logger, setup_logging
from utils.settings import ServiceSettings
from utils.variant_settings import VariantsSettings

log = get_logger("ingress")
ROLLBACK_SYNC_S = 1.0


def serve_request_id(request: Request) -> str:
    """The id Serve's proxy assigned (the client's X-Request-ID when it sent one)."""
    from ray.serve.context import _get_serve_request_context

    return _get_serve_request_context().request_id or request.headers.get("x-request-id") or ""


def build_guards(
    config: ServiceSettings, local: LocalQueryEmbedder | None, metrics: ServeMetrics
) -> GuardPipeline:
    """The guard pipeline; the injection head reads the encoder this replica already loaded
    (one of its own when queries are embedded remotely)."""
    encoder = local or query_embedder_for(config)
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
        engines: dict[str, DeploymentHandle] | None = None,
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
            local = query_embedder_for(config)
            query_embedder = local
        # One index manager per collection, each following its own CURRENT.
        self.config = config
        self.query_embedder = query_embedder
        self.indexes = {name: IndexManager(config.for_collection(name))
                        for name in config.collection_names()}  # fmt: skip
        self.index = self.indexes[config.default_collection]
        searchers = {name: self._searcher(manager) for name, manager in self.indexes.items()}
        llm = ServeLLMGenerator(generator, config.generator) if generator is not None else None
        more = {name: ServeLLMGenerator(handle, config.engines[name])
                for name, handle in (engines or {}).items()}  # fmt: skip
        count = PromptTokenCounter(config.generator.model_source)
        guards = build_guards(config, local, self.metrics) if config.guards.enabled else None
        store = build_cache_store(config)
        cache = AnswerCache(store, config.cache, self.metrics) if config.cache.enabled else None
        experiments = Experiments(config.variants, store, self.metrics)
        default = searchers.pop(config.default_collection)
        feedback = None
        if config.feedback.enabled:
            feedback = FeedbackDesk(actor_ledger(config), config.feedback, self.metrics)
        self.service = RAGService(default, llm, config, self.metrics, collections=searchers,
                                  count_tokens=count, guards=guards, engines=more, cache=cache,
                                  experiments=experiments, feedback=feedback)  # fmt: skip
        self.gate = None
        if config.auth.enabled:
            tenants = build_tenant_store(config.auth)
            self.gate = TenantGate(tenants, config.auth, config.default_collection, self.metrics)
        loop = asyncio.get_event_loop()
        self._watchers = [loop.create_task(m.watch()) for m in self.indexes.values()]
        self._pin_variants(config.variants)
        self._warmup = loop.create_task(self.service.warm_up())
        self._flusher = loop.create_task(self.gate.run_flusher()) if self.gate else None
        self._rollbacks = loop.create_task(self._sync_rollbacks())
        self._answers = loop.create_task(feedback.run()) if feedback is not None else None

    def _searcher(self, manager: IndexManager) -> SearchEngine:
        """A searcher over `manager`'s index, loaded before the replica takes traffic: a
        replica that Serve adds or replaces must not answer 503 "index not loaded" while its
        peers serve (the app may also start before any index exists; then the watcher loads
        the first one)."""
        manager.refresh()
        return SearchEngine(self.query_embedder, manager, self.config.search_batch_size,
                            self.config.call_timeout_s, self.metrics)  # fmt: skip

    def _pin_variants(self, variants: VariantsSettings) -> None:
        """A searcher (and its watcher) for every index version a variant pins."""
        for variant in variants.items:
            for name, version in variant.index_versions.items():
                if (name, version) in self.service.pinned:
                    continue
                settings = self.config.for_collection(name).model_copy(
                    update={"index_version": version})  # fmt: skip
                manager = IndexManager(settings)
                self.service.pinned[(name, version)] = self._searcher(manager)
                self._watchers.append(asyncio.get_event_loop().create_task(manager.watch()))

    async def _sync_rollbacks(self) -> None:
        """Every second, apply the canary rollbacks other replicas published."""
        while True:
            try:
                await asyncio.wait_for(self.service.experiments.sync(), ROLLBACK_SYNC_S)
            except Exception as exc:
                log.warning("rollback sync failed", extra={"error": repr(exc)[:200]})
            await asyncio.sleep(ROLLBACK_SYNC_S)

    def __serve_build_asgi_app__(self) -> FastAPI:
        """Serve calls this after __init__: the routes use this replica's service."""
        return create_app(self.service, self.metrics, request_id_of=serve_request_id,
                          echo_request_id=False, gate=self.gate)  # fmt: skip

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Hot settings from Serve's `user_config`, applied without downtime: the index pin
        and retrieval fields, and `variants` (the whole `variants` block: weights, new
        variants on engines the app has). A bad block fails the deploy and changes nothing."""
        variants = user_config.get("variants")
        if variants is not None:
            update = self.config.model_dump(mode="json") | {"variants": variants}
            checked = ServiceSettings.model_validate(update).variants
            self._pin_variants(checked)
            self.service.experiments.update(checked)
            self.service.shadows.update(checked)
        self.index.reconfigure({k: v for k, v in user_config.items() if k != "variants"})

    async def check_health(self) -> None:
        """Unhealthy when an index watcher or the usage flusher died (Serve then replaces the
        replica)."""
        if any(w.done() for w in self._watchers):
            raise RuntimeError("index watcher stopped")
        if self._flusher is not None and self._flusher.done():
            raise RuntimeError("usage flusher stopped")
        if self._rollbacks.done():
            raise RuntimeError("rollback sync stopped")
        if self._answers is not None and self._answers.done():
            raise RuntimeError("answer record writer stopped")

    async def __del__(self) -> None:
        """Serve calls this on shutdown: write the usage and answer records still buffered."""
        if self.gate is not None:
            await self.gate.flush()
        if self.service.feedback is not None:
            await self.service.feedback.log.flush()
