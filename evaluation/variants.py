"""Each variant of a running service on the same questions, side by side: retrieval through
its /search and answers through its /ask, the variant forced with X-Variant (a key with the
test or admin scope)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from evaluation.answers import base_url, evaluate_answers
from evaluation.metrics import hit_at_k, mean, reciprocal_rank
from evaluation.retrieval import QAItem
from utils.errors import InputError
from utils.urls import page_key


def listed_variants(url: str, headers: dict[str, str], timeout: float) -> list[str]:
    """The variant names GET /admin/variants lists (an admin key); InputError otherwise."""
    reply = httpx.get(f"{base_url(url)}/admin/variants", headers=headers, timeout=timeout)
    if reply.status_code != 200:
        raise InputError(f"cannot list the variants ({reply.status_code}: listing needs an "
                         "admin key); name them with --variants")  # fmt: skip
    return [str(v["name"]) for v in reply.json()["variants"]]


def score_search(
    client: httpx.Client, url: str, items: list[QAItem], ks: list[int], concurrency: int
) -> dict[str, float]:
    """Page hit@k and MRR of /search over the questions that name their source page."""
    scored = [i for i in items if i.source]
    depth = max(ks)

    def pages(item: QAItem) -> list[str] | None:
        try:
            reply = client.get(f"{base_url(url)}/search", params={"query": item.question,
                                                                   "k": depth})  # fmt: skip
            reply.raise_for_status()
            return [page_key(str(hit["source"])) for hit in reply.json()["results"]]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        ranked = list(pool.map(pages, scored))
    rows: dict[str, list[float]] = {}
    for item, found in zip(scored, ranked, strict=True):
        if found is None:
            continue
        want = {page_key(item.source)}
        for k in ks:
            rows.setdefault(f"page_hit@{k}", []).append(hit_at_k(found, want, k))
        rows.setdefault("mrr", []).append(reciprocal_rank(found, want, depth))
    report = {"search_questions": float(len(scored)),
              "search_errors": float(sum(r is None for r in ranked))}  # fmt: skip
    return report | {name: mean(values) for name, values in rows.items()}


def evaluate_variants(
    items: list[QAItem],
    url: str,
    variants: list[str],
    api_key: str | None = None,
    ks: tuple[int, ...] = (1, 3, 5),
    timeout: float = 120.0,
    concurrency: int = 4,
    **answer_options: Any,
) -> dict[str, dict[str, float]]:
    """{variant: retrieval and answer metrics}, one variant after the other so that their
    latencies do not mix. `answer_options` go to evaluate_answers (top_k, max_tokens...)."""
    auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    results: dict[str, dict[str, float]] = {}
    for name in variants:
        headers = {**auth, "X-Variant": name}
        with httpx.Client(timeout=timeout, headers=headers) as client:
            probe = client.get(f"{base_url(url)}/search", params={"query": "probe", "k": 1})
            if probe.status_code in (401, 403, 422):
                raise InputError(f"variant {name!r}: {probe.json().get('message', probe.text)}")
            retrieval = score_search(client, url, items, list(ks), concurrency)
        answers = evaluate_answers(items, url, timeout=timeout, concurrency=concurrency,
                                   api_key=api_key, headers={"X-Variant": name},
                                   **answer_options)  # fmt: skip
        results[name] = retrieval | answers
    return results
