"""Okapi BM25 over an inverted index: a query touches only the postings of its own terms."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "use",
        "using",
    }
)
# Identifiers such as ray.serve.batch, max_ongoing_requests or num-gpus stay whole; their parts
# are indexed too, so "batch" still matches "serve.batch".
_TOKEN_RE = re.compile(r"[a-z0-9]+(?:[._\-/][a-z0-9]+)*")
_PART_RE = re.compile(r"[._\-/]")


def tokenize(text: str) -> list[str]:
    """Lower-cased BM25 terms: whole identifiers plus their parts, minus stop words."""
    tokens: list[str] = []
    for token in _TOKEN_RE.findall(text.lower()):
        parts = _PART_RE.split(token)
        if len(parts) > 1:
            tokens.append(token)
        tokens.extend(p for p in parts if p and p not in STOPWORDS)
    return tokens


class BM25Index:
    """BM25 weights precomputed per (term, document) and stored as postings lists in CSR form:
    `postings[offsets[t]:offsets[t + 1]]` are the documents holding term t, `weights` alongside.
    Scoring a query adds up its terms' postings with one `np.bincount`, so the cost follows the
    postings touched, not the corpus size (a scipy column slice copies and re-sums far more)."""

    def __init__(self, texts: list[str], k1: float = 1.2, b: float = 0.75) -> None:
        vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        tfs: list[float] = []
        lengths = np.zeros(len(texts), dtype=np.float32)
        for row, text in enumerate(texts):
            counts = Counter(tokenize(text))
            lengths[row] = sum(counts.values())
            for term, count in counts.items():
                rows.append(row)
                cols.append(vocab.setdefault(term, len(vocab)))
                tfs.append(count)
        self.vocab = vocab
        self.num_docs = len(texts)
        tf = np.asarray(tfs, dtype=np.float32)
        row_idx = np.asarray(rows, dtype=np.int32)
        col_idx = np.asarray(cols, dtype=np.int64)
        df = np.bincount(col_idx, minlength=len(vocab)).astype(np.float32)
        idf = np.log1p((max(self.num_docs, 1) - df + 0.5) / (df + 0.5))
        avg_len = float(lengths.mean()) if len(texts) else 1.0
        norm = k1 * (1 - b + b * lengths[row_idx] / max(avg_len, 1e-9))
        weights = idf[col_idx] * tf * (k1 + 1) / (tf + norm)
        order = np.argsort(col_idx, kind="stable")
        self.postings = row_idx[order]
        self.weights = weights[order].astype(np.float32)
        self.offsets = np.concatenate([[0], np.cumsum(df.astype(np.int64))])

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for `query` (zeros when no term is known)."""
        terms = [self.vocab[t] for t in set(tokenize(query)) if t in self.vocab]
        if not terms:
            return np.zeros(self.num_docs, dtype=np.float32)
        spans = [slice(self.offsets[t], self.offsets[t + 1]) for t in terms]
        docs = np.concatenate([self.postings[s] for s in spans])
        weights = np.concatenate([self.weights[s] for s in spans])
        return np.bincount(docs, weights=weights, minlength=self.num_docs).astype(np.float32)

    def search(self, query: str, n: int) -> list[tuple[int, float]]:
        """Top `n` (row, score) pairs with a positive score, best first."""
        scores = self.scores(query)
        n = min(n, len(scores))
        if n == 0:
            return []
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]
