"""The models an index version trained on its own corpus (`build_index.py --adapt`), loaded for
serving. They belong to their version: the index manager swaps them in and out with it, so a
query is always embedded (and reranked) by the models its version's vectors were made with."""

from __future__ import annotations

from dataclasses import dataclass

from ragcore.index_format import PublishedIndex
from ragcore.protocols import QueryEmbedder
from ragcore.rerank import PairScorer
from utils.models import QueryEncoder


@dataclass(frozen=True)
class VersionModels:
    """A version's own query embedder and reranker; None where it trained none."""

    query_embedder: QueryEmbedder | None = None
    reranker: PairScorer | None = None


class VersionModelLoader:
    """Loads the adapted models a version names (their files' checksums were verified by
    `load_index`). The last version's models are kept, so reloading the same version for new
    retrieval settings does not load them again."""

    def __init__(
        self,
        embed_threads: int | None,
        embed_chunk_size: int,
        query_encoder: QueryEncoder = "torch",
    ) -> None:
        self.embed_threads = embed_threads
        self.embed_chunk_size = embed_chunk_size
        self.query_encoder = query_encoder
        self._last: tuple[str, VersionModels] | None = None

    def load(self, published: PublishedIndex) -> VersionModels:
        """The version's models (an empty VersionModels for a version without any)."""
        key = str(published.path)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        models = VersionModels(
            load_query_embedder(
                published, self.embed_threads, self.embed_chunk_size, self.query_encoder
            ),
            load_reranker(published),
        )
        self._last = (key, models)
        return models


def load_query_embedder(
    published: PublishedIndex, threads: int | None, chunk_size: int, encoder: QueryEncoder = "torch"
) -> QueryEmbedder | None:
    """The version's adapted query embedder, warmed up; None when it trained none."""
    path = published.adapted_model("embedder")
    if path is None:
        return None
    from ragcore.embedding import warm_query_embedder

    return warm_query_embedder(str(path), threads, chunk_size, encoder)


def load_reranker(published: PublishedIndex) -> PairScorer | None:
    """The version's reranker, reading pairs as it was trained to; None when it trained none.
    Its batch size comes with each call (`rerank_batch_size`, a per-variant setting)."""
    path = published.adapted_model("reranker")
    if path is None:
        return None
    from ragcore.rerank import CrossEncoderReranker

    trained = published.manifest["adapted"]["reranker"].get("settings") or {}
    return CrossEncoderReranker(str(path), max_length=trained.get("max_length"))
