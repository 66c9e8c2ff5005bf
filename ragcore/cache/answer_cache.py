"""The two-tier answer cache: exact (same scope, same normalized question) and semantic (same
scope, a close embedding, and no near miss)."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np

from ragcore.cache.keys import CacheScope, normalize_question
from ragcore.cache.near_miss import near_miss, signature
from ragcore.cache.store import CacheStore
from ragcore.metrics import MetricsSink, NullMetrics
from ragcore.protocols import Answer, Hit, Usage, Validation
from utils.logs import get_logger
from utils.variant_settings import CacheSettings

log = get_logger("cache")


@dataclass(frozen=True)
class CacheHit:
    """A stored answer fit for this request."""

    answer: Answer
    tier: Literal["exact", "semantic"]
    similarity: float = 1.0


def encode_answer(answer: Answer) -> bytes:
    """An answer as stored (its latency and request-specific fields are not)."""
    row = asdict(answer)
    for name in ("latency_ms", "cache", "tokens_saved", "path"):
        row.pop(name, None)
    return json.dumps(row, separators=(",", ":")).encode("utf-8")


def decode_answer(raw: bytes) -> Answer:
    """A stored answer, as it was served."""
    row: dict[str, Any] = json.loads(raw)
    validation = row.pop("validation")
    return Answer(
        **{
            **row,
            "sources": [Hit(**h) for h in row["sources"]],
            "usage": Usage(**row["usage"]),
            "citations": tuple(row["citations"]),
            "validation": None if validation is None else Validation(
                **{**validation, "reasons": tuple(validation["reasons"])}),
            "latency_ms": 0.0,
        }
    )  # fmt: skip


def _entry(key: str, question: str, vector: np.ndarray) -> bytes:
    packed = base64.b64encode(np.asarray(vector, dtype=np.float16).tobytes()).decode("ascii")
    return json.dumps({"k": key, "q": question, "v": packed}).encode("utf-8")


class AnswerCache:
    """Looks answers up and stores them; any store failure is a miss, never an error."""

    def __init__(
        self, store: CacheStore, settings: CacheSettings, metrics: MetricsSink | None = None
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics or NullMetrics()

    async def _call(self, op: str, call: Any) -> Any:
        try:
            return await asyncio.wait_for(call, self.settings.store_timeout_s)
        except Exception as exc:
            self.metrics.cache(op, "error")
            log.warning("cache store call failed", extra={"op": op, "error": repr(exc)[:200]})
            return None

    async def exact(self, scope: CacheScope, question: str) -> CacheHit | None:
        """The answer stored for this normalized question in this scope."""
        raw = await self._call("exact", self.store.get(scope.key(normalize_question(question))))
        if raw is None:
            self.metrics.cache("exact", "miss")
            return None
        self.metrics.cache("exact", "hit")
        return CacheHit(decode_answer(raw), "exact")

    async def semantic(
        self, scope: CacheScope, question: str, vector: np.ndarray
    ) -> CacheHit | None:
        """The answer of the closest stored question of this scope that clears the similarity
        threshold and the near-miss guard."""
        entries = await self._call("semantic", self.store.candidates(scope.digest)) or []
        rows = [json.loads(e) for e in entries]
        if not rows:
            self.metrics.cache("semantic", "miss")
            return None
        matrix = np.vstack([np.frombuffer(base64.b64decode(r["v"]), dtype=np.float16)
                            for r in rows]).astype(np.float32)  # fmt: skip
        sims = matrix @ np.asarray(vector, dtype=np.float32)
        mine, overlap = signature(question), self.settings.min_content_overlap
        outcome = "miss"
        for i in np.argsort(-sims):
            if sims[i] < self.settings.similarity_threshold:
                break
            if near_miss(mine, signature(rows[i]["q"]), overlap) is not None:
                outcome = "near_miss"
                continue
            raw = await self._call("semantic", self.store.get(rows[i]["k"]))
            if raw is not None:
                self.metrics.cache("semantic", "hit")
                return CacheHit(decode_answer(raw), "semantic", float(sims[i]))
        self.metrics.cache("semantic", outcome)
        return None

    async def put(
        self, scope: CacheScope, question: str, vector: np.ndarray | None, answer: Answer
    ) -> None:
        """Store a served answer (only modes the settings name; never a degraded one)."""
        if answer.mode not in self.settings.cache_modes or answer.status != "ok":
            return
        key = scope.key(normalize_question(question))
        entry = b"" if vector is None or not self.settings.semantic else _entry(key, question,
                                                                                vector)  # fmt: skip
        stored = replace(answer, cache="", tokens_saved=0)
        await self._call("put", self.store.put(key, encode_answer(stored), scope.digest, entry))
