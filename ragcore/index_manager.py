"""The live index version of a process: loaded off the request path, swapped atomically."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from ragcore.index_format import current_version, load_index
from ragcore.protocols import Readiness
from ragcore.retrieval import HybridRetriever
from ragcore.version_models import VersionModelLoader, VersionModels
from utils.errors import IndexNotReadyError, InputError
from utils.logs import get_logger
from utils.settings import RetrievalSettings, ServiceSettings

log = get_logger("index")


class IndexManager:
    """Holds the live `HybridRetriever` and its version's own models; loads new versions in a
    worker thread and swaps both in one assignment, so every query sees exactly one complete
    version. The index files are opened once per process, whatever the number of concurrent
    queries."""

    def __init__(self, settings: ServiceSettings, models: VersionModelLoader | None = None):
        self.settings = settings
        self.retrieval = settings.retrieval
        self.pinned_version = settings.index_version
        self.models = models or VersionModelLoader(
            settings.embed_threads, settings.embed_chunk_size, settings.query_encoder
        )
        self._state: tuple[HybridRetriever, VersionModels] | None = None
        self._reason = "index not loaded yet"
        self._lock = threading.Lock()  # one load at a time
        self._wake: asyncio.Event | None = None

    @property
    def live(self) -> HybridRetriever | None:
        state = self._state
        return None if state is None else state[0]

    def require_live(self) -> HybridRetriever:
        """The live retriever; IndexNotReadyError (a 503 with the reason) when there is none."""
        return self.require_state()[0]

    def require_state(self) -> tuple[HybridRetriever, VersionModels]:
        """The live retriever and its version's models, read together; IndexNotReadyError
        when there is none."""
        state = self._state
        if state is None:
            raise IndexNotReadyError(self._reason)
        return state

    def wanted_version(self) -> str | None:
        """The pinned version, else what CURRENT names."""
        return self.pinned_version or current_version(self.settings.index_dir)

    def refresh(self) -> bool:
        """Load the wanted version if it is not the live one; True when a swap happened."""
        with self._lock:
            wanted = self.wanted_version()
            live = self.live
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
                models = self.models.load(published)
            except (IndexNotReadyError, InputError, OSError, ValueError, RuntimeError) as exc:
                self._reason = str(exc)
                log.error("index load failed", extra={"version": wanted, "error": str(exc)})
                return False
            self._state = (retriever, models)
            adapted = sorted(published.manifest.get("adapted") or {})
            log.info("index version live", extra={"version": wanted, "adapted": adapted,
                                                  "chunks": len(published.chunks)})  # fmt: skip
            return True

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Apply hot settings (Serve's `user_config`): `index_version` (pin, or null to follow
        CURRENT) and any retrieval field (top_k, candidates, rrf_k, weights, mode); the watcher
        loads the result in the background while queries keep using the old version."""
        if "index_version" in config:
            self.pinned_version = config["index_version"] or None
        fields = {k: v for k, v in config.items() if k in RetrievalSettings.model_fields}
        if fields:
            self.retrieval = RetrievalSettings.model_validate(
                {**self.retrieval.model_dump(), **fields}
            )
        if self._wake is not None:
            self._wake.set()

    def readiness(self) -> Readiness:
        """Ready with the live version's details, or not with the reason."""
        live = self.live
        if live is None:
            return Readiness(False, self._reason)
        return Readiness(True, details={"index_version": live.version,
                                        "chunks": str(len(live.published.chunks))})  # fmt: skip

    async def watch(self) -> None:
        """Refresh now, then every `index_poll_s` or when reconfigured; runs until cancelled."""
        self._wake = asyncio.Event()
        while True:
            try:
                await asyncio.to_thread(self.refresh)
            except Exception as exc:
                log.error("index refresh crashed", extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.index_poll_s)
            self._wake.clear()
