"""Sentence embeddings, free of Ray: the build job's actors and the serving replicas share it."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from utils.errors import InputError
from utils.models import QueryEncoder, load_sentence_transformer, resolve_embedding_model

if TYPE_CHECKING:
    from utils.settings import ServiceSettings

logger = logging.getLogger(__name__)

# The query vectors one request has computed, by encoder and the text the model reads (after
# its tokenizer's normalizer). The injection head embeds the case-folded question and the cache
# lookup the question as asked: on an uncased model that is one input, encoded once. Keyed by
# encoder too: an index's adapted embedder must never get the base model's vector.
_request_vectors: ContextVar[dict[tuple[int, str], np.ndarray] | None] = ContextVar(
    "request_vectors", default=None
)
_encoder_ids = itertools.count()


def start_request_vectors() -> None:
    """Give the current request (its task, and the threads it hands work to) its own memo of
    query vectors; a request that never calls this encodes every time."""
    _request_vectors.set({})


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
    run in a worker thread (the encoders release the GIL) so the event loop keeps accepting
    calls. `encoder` "onnx" runs the model through ONNX Runtime (the same vectors for less CPU;
    ragcore.onnx_encoder), falling back to sentence-transformers, with a warning, for a model
    it cannot export; "torch" runs sentence-transformers."""

    def __init__(
        self,
        model_name: str,
        num_threads: int | None = None,
        chunk_size: int = 4,
        encoder: QueryEncoder = "torch",
    ) -> None:
        self.model_name = model_name
        self.chunk_size = chunk_size
        self.encoder = encoder
        self._embed: Callable[[list[str], int], np.ndarray]
        self._model_input: Callable[[str], str] = str  # what two texts must share to match
        self._memo_id = next(_encoder_ids)
        if encoder == "onnx":
            try:
                from ragcore.onnx_encoder import load_onnx_encoder

                location = Path(resolve_embedding_model(model_name))
                onnx = load_onnx_encoder(location, num_threads or 1)
                self._embed = onnx.embed
                normalizer = onnx.tokenizer.normalizer
                if normalizer is not None:
                    self._model_input = normalizer.normalize_str
                return
            except (ImportError, InputError) as exc:
                logger.warning("query encoder: sentence-transformers instead of ONNX (%s)", exc)
                self.encoder = "torch"
        self._embed = SentenceEmbedder(model_name, num_threads=num_threads).embed

    def embed_now(self, texts: list[str]) -> np.ndarray:
        """Embed on the calling thread, the texts sorted by length and run `chunk_size` at a
        time, so short queries are not padded to the longest one. Within a request that
        started its memo (`start_request_vectors`), a text the model has already read for it
        is not encoded again."""
        memo = _request_vectors.get()
        if memo is None:
            return self._embed(texts, self.chunk_size)
        keys = [(self._memo_id, self._model_input(t)) for t in texts]
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in memo}
        if todo:
            memo.update(zip(todo, self._embed(list(todo.values()), self.chunk_size), strict=True))
        return np.stack([memo[k] for k in keys])

    async def embed_many(self, texts: list[str]) -> np.ndarray:
        """Embed off the event loop."""
        return await asyncio.to_thread(self.embed_now, texts)


def warm_query_embedder(
    model_name: str, num_threads: int | None, chunk_size: int, encoder: QueryEncoder
) -> LocalQueryEmbedder:
    """A LocalQueryEmbedder that has already run once, so the first query does not pay the
    runtime's lazy set-up; it logs which encoder it runs."""
    embedder = LocalQueryEmbedder(model_name, num_threads, chunk_size, encoder)
    embedder.embed_now(["warm up"])
    logger.info("query encoder for %s: %s", model_name, embedder.encoder)
    return embedder


def query_embedder_for(config: ServiceSettings) -> LocalQueryEmbedder:
    """The service's query encoder as the settings say, warmed up: what an Ingress replica
    embeds questions with, so offline measurements score what is served."""
    return warm_query_embedder(config.embedding_model, config.embed_threads,
                               config.embed_chunk_size, config.query_encoder)  # fmt: skip
