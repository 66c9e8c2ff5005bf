"""The build's indirect-injection scan (ragcore/guards/chunk_scan.py) measured on the full
Ray-docs index: false positives over every real chunk, and detection of the red-team dev set's
attacks planted into random real chunks (its benign rows planted the same way for contrast).

Imported by bench/guard_quality.py, which writes the figures."""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ragcore.documents import Chunk
from ragcore.embedding import SentenceEmbedder
from ragcore.guards.chunk_scan import ChunkScanner
from ragcore.index_format import load_index
from utils.guard_settings import ChunkScanSettings


def plant(texts: list[str], chunks: list[Chunk], seed: int = 0) -> list[Chunk]:
    """Each text as a paragraph of its own at a random place in a random real chunk."""
    rng = random.Random(seed)
    planted = []
    for text in texts:
        chunk = rng.choice(chunks)
        paragraphs = chunk.text.split("\n\n")
        at = rng.randrange(len(paragraphs) + 1)
        planted.append(replace(chunk, text="\n\n".join([*paragraphs[:at], text,
                                                        *paragraphs[at:]])))  # fmt: skip
    return planted


def scan_figures(index_dir: Path, data: Path, embedder: SentenceEmbedder) -> dict[str, Any]:
    """False positives on the real chunks and detection of planted attacks, at the default
    chunk threshold."""
    published = load_index(index_dir)
    scanner = ChunkScanner(ChunkScanSettings().classifier_threshold)
    vectors = published.index.reconstruct_n(0, published.index.ntotal)
    start = time.perf_counter()
    real = scanner.scan(published.chunks, vectors, "quarantine")
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line]
    titles = bool(published.manifest.get("prepend_titles", True))
    out: dict[str, Any] = {
        "chunks": len(published.chunks),
        "real_chunks_flagged": len(real.flagged),
        "real_chunk_false_positive_rate": len(real.flagged) / max(1, len(published.chunks)),
        "real_flagged_by_reason": real.summary()["by_reason"],
        "scan_ms_per_1000_chunks": seconds * 1000 / max(1, len(published.chunks)) * 1000,
        "threshold": scanner.threshold,
    }
    for label, name in ((1, "planted_attacks"), (0, "planted_benign_rows")):
        planted = plant([str(r["text"]) for r in rows if int(r["label"]) == label],
                        published.chunks, seed=label)  # fmt: skip
        vectors = embedder.embed([c.embed_text(titles) for c in planted])
        scan = scanner.scan(planted, vectors, "quarantine")
        out[f"{name}"] = len(planted)
        out[f"{name}_flagged_rate"] = len(scan.flagged) / max(1, len(planted))
        patterns = [f for f in scan.flagged if f.reasons != ("classifier",)]
        out[f"{name}_flagged_by_patterns_rate"] = len(patterns) / max(1, len(planted))
    return out
