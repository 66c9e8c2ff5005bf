"""Sentence embeddings, free of Ray: the build job's actors and the serving replicas share it."""

from __future__ import annotations

import asyncio

import numpy as np

from utils.models import load_sentence_transformer


class SentenceEmbedder:
    """Normalised float32 vectors (cosine via inner product) from a sentence-transformers model."""

    def __init__(self, model_name: str, device: str = "cpu", num_threads: int | None = None):
        if num_threads:
            import torch

            torch.set_num_threads(num_threads)
        self.model_name = model_name
        self.model = load_sentence_transformer(model_name, device=device)
        dimension = getattr(self.model, "get_embedding_dimension", None)
        dimension = dimension or self.model.get_sentence_embedding_dimension
        self.dim = int(dimension() or 0)

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Encode texts into an (n, dim) float32 array of unit vectors."""
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class LocalQueryEmbedder:
    """The `QueryEmbedder` protocol in this process: one forward pass per batch of queries,
    run in a worker thread (torch releases the GIL) so the event loop keeps accepting calls."""

    def __init__(
        self, model_name: str, num_threads: int | None = None, chunk_size: int = 4
    ) -> None:
        self.model_name = model_name
        self.chunk_size = chunk_size
        self._embedder = SentenceEmbedder(model_name, num_threads=num_threads)

    def embed_now(self, texts: list[str]) -> np.ndarray:
        """Embed on the calling thread. sentence-transformers sorts the texts by length and
        runs `chunk_size` at a time, so short queries are not padded to the longest one."""
        return self._embedder.embed(texts, batch_size=self.chunk_size)

    async def embed_many(self, texts: list[str]) -> np.ndarray:
        """Embed off the event loop."""
        return await asyncio.to_thread(self.embed_now, texts)
