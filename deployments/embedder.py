"""Optional Embedder deployment (`remote_embedder: true`): query embedding scaled out on its own
replicas, e.g. GPU nodes. By default the Ingress embeds in its own process (no hop)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from ray.serve.handle import DeploymentHandle

from deployments.faults import remote_call
from ragcore.embedding import query_embedder_for
from utils.logs import setup_logging
from utils.settings import ServiceSettings


class EmbedderServer:
    """Serve replica body: one model, one forward pass per incoming batch."""

    def __init__(self, settings: dict[str, Any]) -> None:
        setup_logging()
        config = ServiceSettings.model_validate(settings)
        self.embedder = query_embedder_for(config)

    async def embed_many(self, texts: list[str]) -> np.ndarray:
        return await self.embedder.embed_many(texts)


class RemoteQueryEmbedder:
    """The `QueryEmbedder` protocol over the Embedder deployment's handle."""

    def __init__(self, handle: DeploymentHandle, model_name: str, timeout_s: float) -> None:
        self.handle = handle
        self.model_name = model_name
        self.timeout_s = timeout_s

    async def embed_many(self, texts: list[str]) -> np.ndarray:
        async with remote_call("the embedder"):
            result: np.ndarray = await asyncio.wait_for(
                self.handle.embed_many.remote(texts), self.timeout_s
            )
        return result
