"""The semantic cache's threshold, chosen on labelled pairs, and a Zipf replay of a query log.

    python -m bench.cache_quality [--seed 13] [--queries 3000]

1. Pairs (evaluation/cache_pairs.py) from the Ray docs dev questions, plus natural near
   neighbours (distinct dev questions whose embeddings are close) as contrasts. Each pair is
   embedded with the service's model; a pair is a hit when its cosine clears the threshold and
   the near-miss guard lets it through. The threshold is the lowest (most hits) whose
   false-hit rate on the contrasts is at most 1%.
2. A query log of `--queries` draws over the dev questions with Zipf(1.1) popularity; each
   draw is the question itself or one of its paraphrases, and some draws are a contrast of a
   popular question (a different question that looks alike). The log is replayed through the
   real AnswerCache (exact, then semantic) on the in-process store; a miss stores its answer.
   Reported: hit rate per tier, false hits (an answer for another question), tokens saved
   (each answer costs the mean prompt + completion tokens measured in answer_quality.json),
   and the lookup latency of a hit and of a miss.

Writes bench/results/cache_quality.json and the "Answer cache" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter
from typing import Any

import numpy as np

from bench.common import QA_FILE, load_questions
from bench.report import RESULTS_DIR, write_section
from evaluation.cache_pairs import Pair, build_pairs
from ragcore.cache.answer_cache import AnswerCache
from ragcore.cache.keys import CacheScope
from ragcore.cache.near_miss import near_miss, signature
from ragcore.cache.store import LocalCacheStore, MemoryCache
from ragcore.embedding import SentenceEmbedder
from ragcore.protocols import Answer, Usage
from utils.variant_settings import CacheSettings

THRESHOLDS = [round(t, 2) for t in np.arange(0.80, 0.99, 0.01)]
OVERLAPS = [0.34, 0.5, 0.67, 0.8, 1.0]
MAX_FALSE_HIT = 0.01
NEIGHBOUR_MIN_COSINE = 0.75
SCOPE = CacheScope("bench", "docs", "v1", "main@1", "m", "answer-v3", "p", "{}", 5)


def neighbours(questions: list[str], vectors: np.ndarray) -> list[Pair]:
    """Each dev question with its closest other dev question, when close: a natural contrast."""
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -1)
    out = []
    for i, j in enumerate(sims.argmax(axis=1)):
        if sims[i, j] >= NEIGHBOUR_MIN_COSINE and i < j:
            out.append(Pair(questions[i], questions[j], 0, "neighbour"))
    return out


def sweep(pairs: list[Pair], cosines: np.ndarray) -> list[dict[str, Any]]:
    """Hit rate on paraphrases and false-hit rate on contrasts for every setting."""
    guard = {}
    for overlap in OVERLAPS:
        guard[overlap] = np.array([near_miss(signature(p.a), signature(p.b), overlap) is None
                                   for p in pairs])  # fmt: skip
    labels = np.array([p.label for p in pairs])
    rows = []
    for overlap in OVERLAPS:
        for t in THRESHOLDS:
            hit = (cosines >= t) & guard[overlap]
            rows.append({"threshold": t, "min_overlap": overlap,
                         "hit_rate": float(hit[labels == 1].mean()),
                         "false_hit_rate": float(hit[labels == 0].mean()),
                         "cosine_only_false_hit_rate":
                             float((cosines >= t)[labels == 0].mean())})  # fmt: skip
    return rows


def per_kind(pairs: list[Pair], cosines: np.ndarray, t: float, overlap: float) -> dict[str, Any]:
    """Hit rate of each pair kind at the chosen setting."""
    out: dict[str, Any] = {}
    for kind in sorted({p.kind for p in pairs}):
        idx = [i for i, p in enumerate(pairs) if p.kind == kind]
        hits = [cosines[i] >= t and near_miss(signature(pairs[i].a), signature(pairs[i].b),
                                              overlap) is None for i in idx]  # fmt: skip
        out[kind] = {"pairs": len(idx), "label": pairs[idx[0]].label,
                     "hit_rate": round(float(np.mean(hits)), 4)}  # fmt: skip
    return out


def replay(questions: list[str], pairs: list[Pair], embed: Any, settings: CacheSettings,
           queries: int, seed: int, tokens_per_answer: float) -> dict[str, Any]:  # fmt: skip
    """The Zipf log through the real cache; an answer's text names its intent."""
    rng = random.Random(seed)
    forms: dict[str, list[str]] = {q: [q] for q in questions}
    contrast_of: dict[str, list[str]] = {q: [] for q in questions}
    for p in pairs:
        if p.a in forms:
            (forms[p.a] if p.label == 1 else contrast_of[p.a]).append(p.b)
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(questions))]
    order = rng.sample(questions, len(questions))
    log: list[tuple[str, str]] = []  # (intent, text)
    for _ in range(queries):
        intent = rng.choices(order, weights)[0]
        if contrast_of[intent] and rng.random() < 0.1:
            text = rng.choice(contrast_of[intent])
            log.append((f"contrast:{text}", text))
        else:
            log.append((intent, rng.choice(forms[intent])))
    vectors = embed(sorted({t for _, t in log}))
    vector_of = dict(zip(sorted({t for _, t in log}), vectors, strict=True))
    cache = AnswerCache(LocalCacheStore(MemoryCache(settings)), settings)
    counts: Counter[str] = Counter()
    hit_ms: list[float] = []
    miss_ms: list[float] = []

    async def run() -> None:
        for intent, text in log:
            start = time.perf_counter()
            hit = await cache.exact(SCOPE, text)
            if hit is None:
                hit = await cache.semantic(SCOPE, text, vector_of[text])
            ms = (time.perf_counter() - start) * 1000
            if hit is None:
                miss_ms.append(ms)
                counts["miss"] += 1
                answer = Answer(intent, [], Usage(int(tokens_per_answer), 0), 0.0)
                await cache.put(SCOPE, text, vector_of[text], answer)
                continue
            hit_ms.append(ms)
            counts[hit.tier] += 1
            if hit.answer.text != intent:
                counts["false"] += 1

    asyncio.run(run())
    n = len(log)
    hits = counts["exact"] + counts["semantic"]
    return {"queries": n, "distinct_texts": len(vector_of),
            "exact_hit_rate": round(counts["exact"] / n, 4),
            "semantic_hit_rate": round(counts["semantic"] / n, 4),
            "false_hits": counts["false"],
            "false_hit_rate_of_hits": round(counts["false"] / max(hits, 1), 4),
            "tokens_saved": int(hits * tokens_per_answer),
            "tokens_saved_share": round(hits / n, 4),
            "lookup_p50_ms_hit": round(float(np.percentile(hit_ms, 50)), 3) if hit_ms else None,
            "lookup_p50_ms_miss": round(float(np.percentile(miss_ms, 50)), 3)}  # fmt: skip


def tokens_per_answer() -> float:
    """Mean prompt + completion tokens of a generated answer (answer_quality.json), else 900."""
    path = RESULTS_DIR / "answer_quality.json"
    try:
        data = json.loads(path.read_text())
        return float(data["reports"]["after (shipped defaults)"]["tokens_total"])
    except (OSError, KeyError, ValueError, TypeError):
        return 900.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--queries", type=int, default=3000)
    args = parser.parse_args()
    if not QA_FILE.exists():
        raise SystemExit(f"needs the Ray docs dev questions at {QA_FILE}")
    questions = list(dict.fromkeys(load_questions()))
    embedder = SentenceEmbedder("all-MiniLM-L6-v2")
    base = embedder.embed(questions)
    pairs = build_pairs(questions, args.seed) + neighbours(questions, base)
    texts = sorted({t for p in pairs for t in (p.a, p.b)})
    vec = dict(zip(texts, embedder.embed(texts), strict=True))
    cosines = np.array([float(vec[p.a] @ vec[p.b]) for p in pairs])
    rows = sweep(pairs, cosines)
    fit = [r for r in rows if r["false_hit_rate"] <= MAX_FALSE_HIT]
    # The strictest threshold within a point of the best hit rate: a margin for held-out
    # contrasts that these pairs do not cover.
    top = max(r["hit_rate"] for r in fit)
    best = max((r for r in fit if r["hit_rate"] >= top - 0.01), key=lambda r: r["threshold"])
    settings = CacheSettings(
        similarity_threshold=best["threshold"], min_content_overlap=best["min_overlap"]
    )
    result = {"pairs": dict(Counter(f"{p.label}:{p.kind}" for p in pairs)),
              "chosen": best, "per_kind": per_kind(pairs, cosines, best["threshold"],
                                                   best["min_overlap"]),
              "sweep": rows,
              "replay": replay(questions, pairs, embedder.embed, settings, args.queries,
                               args.seed, tokens_per_answer())}  # fmt: skip
    (RESULTS_DIR / "cache_quality.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("chosen", "per_kind", "replay")}, indent=2))
    intro, *rest = render(result).split("\n\n")
    write_section(
        "Answer cache (issue 12)", intro.replace("\n", " "), "\n\n".join(rest).split("\n")
    )


def render(result: dict[str, Any]) -> str:
    """The docs/benchmarks.md section."""
    best, replay_ = result["chosen"], result["replay"]
    kinds = "\n".join(f"| {k} | {'paraphrase' if v['label'] else 'contrast'} | {v['pairs']} | "
                      f"{v['hit_rate']:.3f} |" for k, v in result["per_kind"].items())  # fmt: skip
    return f"""Measured by `python -m bench.cache_quality` on the Ray docs dev questions
(all-MiniLM-L6-v2, CPU). Pairs are built by `evaluation/cache_pairs.py`; natural neighbours are
distinct dev questions with a cosine of at least {NEIGHBOUR_MIN_COSINE}.

Chosen: similarity threshold **{best["threshold"]}** with the near-miss guard (content-word
overlap at least {best["min_overlap"]}): paraphrase hit rate **{best["hit_rate"]:.3f}**,
false-hit rate on the contrasts **{best["false_hit_rate"]:.3f}** (target at most 0.01). The
same threshold without the guard would serve a wrong answer for
{best["cosine_only_false_hit_rate"]:.3f} of the contrasts.

| pair kind | label | pairs | hit rate |
|---|---|---|---|
{kinds}

Replay of a Zipf(1.1) log of {replay_["queries"]} queries ({replay_["distinct_texts"]} distinct
texts; paraphrases and 10% look-alike contrasts) through the real cache: exact hits
{replay_["exact_hit_rate"]:.3f}, semantic hits {replay_["semantic_hit_rate"]:.3f}, false hits
{replay_["false_hits"]} ({replay_["false_hit_rate_of_hits"]:.4f} of hits), generator tokens
saved {replay_["tokens_saved"]:,} ({replay_["tokens_saved_share"]:.3f} of the answers).
Lookup p50 (in process): hit {replay_["lookup_p50_ms_hit"]} ms, miss
{replay_["lookup_p50_ms_miss"]} ms.
"""


if __name__ == "__main__":
    main()
