"""Retriever: the published index behind hybrid search, hot-swapped when a new version lands."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from ray import serve

from deployments.protocols import Hit, QueryEmbedding, Readiness, SearchOutcome
from pipelines.index_store import check_model, load_index
from pipelines.publish import current_version
from pipelines.retrieval import HybridRetriever, Mode
from utils.errors import IndexNotReadyError, InputError
from utils.logs import get_logger, setup_logging
from utils.settings import RetrievalSettings, ServiceSettings

log = get_logger("retriever")


class IndexManager:
    """Holds the live `HybridRetriever`; loads new versions off the request path and swaps the
    reference in one assignment, so every query sees exactly one complete version."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.retrieval = settings.retrieval
        self.pinned_version = settings.index_version
        self._live: HybridRetriever | None = None
        self._reason = "index not loaded yet"
        self._lock = threading.Lock()  # one load at a time

    @property
    def live(self) -> HybridRetriever | None:
        return self._live

    def wanted_version(self) -> str | None:
        """The pinned version, else what CURRENT names."""
        return self.pinned_version or current_version(self.settings.index_dir)

    def refresh(self) -> bool:
        """Load the wanted version if it is not the live one; True when a swap happened."""
        with self._lock:
            wanted = self.wanted_version()
            live = self._live
            if wanted is None:
                if live is None:
                    self._reason = (
                        f"no index published in {self.settings.index_dir}: run "
                        f"`python build_index.py --index-dir {self.settings.index_dir}`"
                    )
                return False
            if live is not None and live.version == wanted and live.settings == self.retrieval:
                return False
            try:
                published = load_index(
                    self.settings.index_dir, wanted, self.settings.embedding_model
                )
                retriever = HybridRetriever(published, self.retrieval)
            except (IndexNotReadyError, InputError, OSError, ValueError) as exc:
                self._reason = str(exc)
                log.error("index load failed", extra={"version": wanted, "error": str(exc)})
                return False
            self._live = retriever
            log.info("index version live", extra={"version": wanted,
                                                  "chunks": len(published.chunks)})  # fmt: skip
            return True

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Apply hot settings: `index_version` (pin, or null to follow CURRENT) and any
        retrieval field (top_k, candidates, rrf_k, weights, mode)."""
        if "index_version" in config:
            self.pinned_version = config["index_version"] or None
        fields = {k: v for k, v in config.items() if k in RetrievalSettings.model_fields}
        if fields:
            self.retrieval = RetrievalSettings.model_validate(
                {**self.retrieval.model_dump(), **fields}
            )

    def readiness(self) -> Readiness:
        live = self._live
        if live is None:
            return Readiness(False, self._reason)
        return Readiness(True, details={"index_version": live.version,
                                        "chunks": str(len(live.published.chunks))})  # fmt: skip

    def search(
        self, query: str, embedding: QueryEmbedding, k: int, mode: Mode | None = None
    ) -> SearchOutcome:
        """Hybrid search on the live version; IndexNotReadyError when there is none."""
        live = self._live
        if live is None:
            raise IndexNotReadyError(self._reason)
        check_model(live.published.manifest, embedding.model)
        hits = [
            Hit(
                content=r.chunk.text,
                source=r.chunk.source,
                score=round(r.score, 6),
                title=" > ".join(t for t in (r.chunk.page_title, r.chunk.section_title) if t),
            )
            for r in live.search(query, embedding.vector, k, mode)
        ]
        return SearchOutcome(hits, live.version)


@serve.deployment(name="Retriever")
class RetrieverDeployment:
    """Serve wrapper: loads in the background and polls CURRENT; `reconfigure` takes
    `user_config` changes (index_version, retrieval fields) and swaps without downtime."""

    def __init__(self, settings: dict[str, Any]) -> None:
        setup_logging()
        self.manager = IndexManager(ServiceSettings.model_validate(settings))
        self._wake = asyncio.Event()
        self._poller = asyncio.get_event_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.manager.refresh)
            except Exception as exc:
                log.error("index refresh crashed", extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.manager.settings.index_poll_s)
            self._wake.clear()

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.manager.reconfigure(config)
        self._wake.set()  # load now, in the background; requests keep using the old version

    async def search(self, query: str, embedding: QueryEmbedding, k: int) -> SearchOutcome:
        return self.manager.search(query, embedding, k)

    async def readiness(self) -> Readiness:
        return self.manager.readiness()

    async def check_health(self) -> None:
        if self._poller.done():
            raise RuntimeError("index poller stopped")
