"""Indirect injection: scan every chunk at build time with the question detector's layers.

The pattern families run over every normalized view of the chunk (decoded blobs included).
The trained head reads the vector the build already made for the chunk, so the scan costs
no second encoder pass; documents are far from the short prompts it was trained on, so it
needs a stricter threshold than on questions (`ChunkScanSettings.classifier_threshold`,
measured in bench/guard_quality.py). A flagged chunk is quarantined (kept beside the index,
never served) or dropped."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ragcore.documents import Chunk
from ragcore.guards.injection import InjectionHead, ngram_features
from ragcore.guards.normalize import normalize
from ragcore.guards.patterns import match_families

SCAN_BATCH = 1024


@dataclass(frozen=True)
class FlaggedChunk:
    """One chunk the scan flagged, and why."""

    chunk: Chunk
    reasons: tuple[str, ...]
    score: float

    def record(self) -> dict[str, Any]:
        """What the manifest says about it (no text: the quarantine file holds that)."""
        return {"id": self.chunk.id, "source": self.chunk.source,
                "reasons": list(self.reasons), "score": round(self.score, 4)}  # fmt: skip

    def quarantine_record(self) -> dict[str, Any]:
        """The chunk and the verdict, as the quarantine file keeps them for review."""
        return {**self.chunk.to_dict(), "reasons": list(self.reasons), "score": self.score}


@dataclass
class ScanResult:
    """The chunks to serve, the flagged ones, and the counts the manifest records."""

    action: str
    served: list[int]  # row numbers into the scanned list
    flagged: list[FlaggedChunk] = field(default_factory=list)
    scanned: int = 0

    def summary(self) -> dict[str, Any]:
        """The manifest's `guard_scan` entry."""
        reasons = Counter(r for f in self.flagged for r in f.reasons)
        return {
            "action": self.action,
            "scanned": self.scanned,
            "flagged": len(self.flagged),
            "by_reason": dict(sorted(reasons.items())),
            "quarantined": len(self.flagged) if self.action == "quarantine" else 0,
            "dropped": len(self.flagged) if self.action == "drop" else 0,
            "flagged_chunks": [f.record() for f in self.flagged],
        }


class ChunkScanner:
    """Flags chunks by pattern family or by the head's score on their build vector."""

    def __init__(self, threshold: float, head: InjectionHead | None = None) -> None:
        self.threshold = threshold
        self.head = head or InjectionHead.load()

    def verdicts(
        self, texts: list[str], vectors: np.ndarray
    ) -> list[tuple[tuple[str, ...], float]]:
        """(reasons, head score) per text; no reasons means clean."""
        canonical = [normalize(t) for t in texts]
        x = np.hstack([np.asarray(vectors, dtype=np.float32),
                       ngram_features([c.readable for c in canonical])])  # fmt: skip
        scores = self.head.scores(x) if texts else np.zeros(0)
        out = []
        for norm, score in zip(canonical, scores, strict=True):
            reasons = tuple(match_families(norm))
            if not reasons and score >= self.threshold:
                reasons = ("classifier",)
            out.append((reasons, float(score)))
        return out

    def scan(self, chunks: list[Chunk], vectors: np.ndarray, action: str) -> ScanResult:
        """Scan every chunk; `action` (quarantine, drop) is recorded, not applied here."""
        result = ScanResult(action, served=[], scanned=len(chunks))
        verdicts = []
        for start in range(0, len(chunks), SCAN_BATCH):  # bounded memory: dense n-gram rows
            batch = chunks[start : start + SCAN_BATCH]
            texts = [c.embed_text(prepend_titles=True) for c in batch]  # headings are text too
            verdicts += self.verdicts(texts, vectors[start : start + len(batch)])
        for row, (chunk, (reasons, score)) in enumerate(zip(chunks, verdicts, strict=True)):
            if reasons:
                result.flagged.append(FlaggedChunk(chunk, reasons, score))
            else:
                result.served.append(row)
        return result
