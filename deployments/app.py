"""The Serve application builder: Ingress (API + embed + retrieve) -> Generator.

`serve run deployments.app:build_app` and `serve deploy serve_config.yaml` both call
`build_app(args)`. `args` are laid over `RAG_SERVICE__*` environment variables and validated by
`ServiceSettings`; each deployment's Serve options come from those settings and are applied as
`serve.deployment(cls, **options)`, as ray.serve.llm's builder does.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve.deployment import Application

from deployments.embedder import EmbedderServer
from deployments.generator import build_llm_app
from deployments.ingress import Ingress
from utils.settings import ServiceSettings, service_settings


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Application builder for `serve run` / `serve deploy` and serve_index.py."""
    return build_app_from(service_settings(args))


def build_app_from(config: ServiceSettings, generator: Application | None = None) -> Application:
    """The app for validated settings; `generator` replaces the vLLM deployment (fault tests).
    Every engine under `engines` is one more LLMServer deployment."""
    payload = config.model_dump(mode="json")
    if generator is None and config.generator.enabled:
        generator = build_llm_app(config.generator)
    engines = {name: build_llm_app(settings, name) for name, settings in config.engines.items()
               if settings.enabled}  # fmt: skip
    embedder = None
    if config.remote_embedder:
        embedder = serve.deployment(EmbedderServer, name="Embedder",  # type: ignore[attr-defined]
                                    **config.embedder.serve_options()).bind(payload)  # fmt: skip
    ingress = serve.deployment(Ingress, name="Ingress", **config.ingress.serve_options())
    return ingress.bind(payload, generator, embedder, engines)  # type: ignore[attr-defined]
