"""Ranking metrics (hit@k, MRR, recall, nDCG as pytrec_eval computes it) and their table."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence


def dedupe(keys: Iterable[str]) -> list[str]:
    """Keys in first-seen order: several chunks of one document count once, at their best rank."""
    return list(dict.fromkeys(keys))


def hit_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """1.0 when any of the first `k` keys is relevant, else 0.0."""
    return float(any(key in relevant for key in ranked[:k]))


def reciprocal_rank(
    ranked: Sequence[str], relevant: Collection[str], k: int | None = None
) -> float:
    """1 / rank of the first relevant key within the first `k` (all when None), else 0."""
    for rank, key in enumerate(ranked[:k] if k else ranked, start=1):
        if key in relevant:
            return 1.0 / rank
    return 0.0


def recall_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Share of the relevant keys found in the first `k` (ranked keys must be de-duplicated)."""
    if not relevant:
        return 0.0
    return sum(1 for key in ranked[:k] if key in relevant) / len(relevant)


def ndcg_at_k(ranked: Sequence[str], gains: Mapping[str, float], k: int) -> float:
    """nDCG@k with linear gains and a log2(rank + 1) discount, as pytrec_eval (BEIR) computes it."""
    dcg = sum(gains.get(key, 0.0) / math.log2(i + 2) for i, key in enumerate(ranked[:k]))
    ideal = sorted((g for g in gains.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean; 0.0 for nothing."""
    items = list(values)
    return sum(items) / len(items) if items else 0.0


def format_table(results: Mapping[str, Mapping[str, float]]) -> list[str]:
    """A markdown table: one row per metric, one column per mode."""
    modes = list(results)
    names = dedupe(name for mode in modes for name in results[mode])
    lines = ["| metric | " + " | ".join(modes) + " |", "| --- |" + " ---: |" * len(modes)]
    for name in names:
        cells = []
        for mode in modes:
            value = results[mode].get(name)
            cells.append("" if value is None else f"{value:.0f}" if value >= 2 else f"{value:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines
