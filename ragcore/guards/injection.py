"""Prompt-injection detection: the pattern families first, then a small trained head on top
of the MiniLM encoder the service already loads plus hashed character n-grams (which carry
German and obfuscated spellings that an English sentence encoder blurs).

The head is a logistic regression built by `python -m pipelines.train_guard` from the red-team
dev set only; `injection_head.npz` holds its weights, threshold and how it was made."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragcore.guards.normalize import normalize
from ragcore.guards.patterns import match_families

HEAD_PATH = Path(__file__).with_name("injection_head.npz")
NGRAM_FEATURES = 2**12
Embed = Callable[[list[str]], np.ndarray]


def ngram_features(texts: list[str]) -> np.ndarray:
    """Hashed character 3-5-grams within word boundaries, L2-normalized (stateless)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vectorizer = HashingVectorizer(
        analyzer="char_wb", ngram_range=(3, 5), n_features=NGRAM_FEATURES, alternate_sign=False
    )
    return np.asarray(vectorizer.transform(texts).toarray(), dtype=np.float32)


def features(texts: list[str], embed: Embed) -> np.ndarray:
    """What the head reads: [sentence embedding, n-gram hashes] of the canonical texts, blobs
    decoded in place."""
    canonical = [normalize(t).readable for t in texts]
    return np.hstack([np.asarray(embed(canonical), dtype=np.float32), ngram_features(canonical)])


@dataclass(frozen=True)
class InjectionHead:
    """Logistic-regression weights over `features`, and the decision threshold."""

    coef: np.ndarray
    intercept: float
    threshold: float
    meta: dict[str, Any] = field(default_factory=dict)

    def scores(self, x: np.ndarray) -> np.ndarray:
        """P(attack) for each row of features."""
        return np.asarray(1.0 / (1.0 + np.exp(-(x @ self.coef + self.intercept))))

    @property
    def digest(self) -> str:
        """What identifies this head: its weights and threshold (a retrained head is another)."""
        raw = np.asarray(self.coef, dtype=np.float32).tobytes()
        raw += np.asarray([self.intercept, self.threshold], dtype=np.float32).tobytes()
        return hashlib.sha256(raw).hexdigest()[:16]

    def save(self, path: Path) -> None:
        """Write the head (float32 weights and a JSON description)."""
        np.savez_compressed(path, coef=self.coef.astype(np.float32),
                            intercept=np.float32(self.intercept),
                            threshold=np.float32(self.threshold),
                            meta=np.array(json.dumps(self.meta, sort_keys=True)))  # fmt: skip

    @classmethod
    def load(cls, path: Path = HEAD_PATH) -> InjectionHead:
        """Read a head written by `save`."""
        with np.load(path, allow_pickle=False) as data:
            return cls(data["coef"], float(data["intercept"]), float(data["threshold"]),
                       json.loads(str(data["meta"])))  # fmt: skip


@dataclass(frozen=True)
class Detection:
    """The verdict on one text: the pattern families that matched, the head's score, and the
    reason codes (families, or `classifier`) when it is flagged."""

    flagged: bool
    score: float
    reasons: tuple[str, ...]
    ms: float


class InjectionDetector:
    """Patterns over every normalized view (decoded blobs included), then the head."""

    def __init__(self, embed: Embed, head: InjectionHead | None = None) -> None:
        self.embed = embed
        self.head = head or InjectionHead.load()

    def detect_many(self, texts: list[str]) -> list[Detection]:
        """One verdict per text; one encoder pass for all of them."""
        start = time.perf_counter()
        families = [match_families(normalize(t)) for t in texts]
        scores = self.head.scores(features(texts, self.embed)) if texts else np.zeros(0)
        ms = (time.perf_counter() - start) * 1000 / max(1, len(texts))
        out = []
        for found, score in zip(families, scores, strict=True):
            reasons = tuple(found) or (("classifier",) if score >= self.head.threshold else ())
            out.append(Detection(bool(reasons), float(score), reasons, ms))
        return out

    def detect(self, text: str) -> Detection:
        """The verdict on one text."""
        return self.detect_many([text])[0]
