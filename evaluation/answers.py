"""Score a running service's answers through its public `/ask` contract.

POST {"question", "top_k", "max_tokens", "prompt_version"?} -> {"answer", "answer_mode"?,
"sources": [{"source", "content", "score"}], "tokens_used": {...}, "latency_ms", ...}.

Judge-free metrics always run on the answer text as the user gets it: loop rate, citation
validity, share with a valid citation, groundedness (the service's own measure,
`ragcore.grounding`), invented URLs, extractive share, refusal rates, length and latency. With a
judge URL, an OpenAI-compatible model also grades faithfulness and relevance (RAGAS style).
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from evaluation.metrics import mean
from evaluation.retrieval import QAItem, load_qa
from ragcore.answer_checks import max_ngram_count
from ragcore.citations import URL_RE, cited_numbers
from ragcore.grounding import supported_share
from utils.urls import page_key

_REFUSAL_RE = re.compile(
    r"\b(i (do not|don't|cannot|can't) (know|answer|find)|not (mentioned|covered|found|provided)"
    r" in|(no|not enough) (relevant )?(information|context)|unable to (answer|find)|"
    r"cannot be answered|can't be answered|outside (the|my) (scope|context)|"
    r"does not cover|doesn't cover|could not find)",
    re.I,
)
_REFUSAL_STATUSES = {"refused", "no_answer", "unanswerable", "insufficient_context"}
LOOP_NGRAM, LOOP_COUNT = 6, 3  # the loop: any 6-gram repeated 3 or more times


def load_questions(qa: Path, unanswerable: Path | None = None) -> list[QAItem]:
    """The question file plus, optionally, a file whose questions are all unanswerable."""
    items = load_qa(qa)
    return items + (load_qa(unanswerable, answerable=False) if unanswerable else [])


def invents_url(answer: str, sources: list[dict[str, Any]]) -> bool:
    """True when the answer has a URL whose page is not among the retrieved sources."""
    pages = {page_key(str(s.get("source", ""))) for s in sources}
    return any(page_key(url.rstrip(".,;:")) not in pages for url in URL_RE.findall(answer))


def answer_quality(
    answer: str, sources: list[dict[str, Any]], completion_tokens: int, max_tokens: int
) -> dict[str, float]:
    """One answer's judge-free scores: loop (a 6-gram 3+ times, or cut at `max_tokens`),
    citations (valid share, at least one valid), groundedness, invented URL and length."""
    numbers = cited_numbers(answer)
    valid = [n for n in numbers if 1 <= n <= len(sources)]
    looped = max_ngram_count(answer, LOOP_NGRAM) >= LOOP_COUNT or completion_tokens >= max_tokens
    scores = {
        "loop_rate": float(looped),
        "cut_at_max_tokens_rate": float(completion_tokens >= max_tokens),
        "valid_citation_share": float(bool(valid)),
        "groundedness": supported_share(answer, [str(s.get("content", "")) for s in sources]),
        "invented_url_rate": float(invents_url(answer, sources)),
        "answer_words": float(len(answer.split())),
    }
    if numbers:
        scores["citation_validity"] = len(valid) / len(numbers)
    return scores


def is_refusal(response: dict[str, Any]) -> bool:
    """A refusal by answer mode, status field or wording."""
    if response.get("answer_mode") == "refused":
        return True
    status = str(response.get("status") or "").lower()
    return status in _REFUSAL_STATUSES or bool(_REFUSAL_RE.search(str(response.get("answer", ""))))


def base_url(url: str) -> str:
    """The service root of `url`, given as the root or as its /ask URL."""
    url = url.rstrip("/")
    return url.removesuffix("/ask")


def ask_url(url: str) -> str:
    """The /ask endpoint of a base URL (an /ask URL is kept)."""
    return base_url(url) + "/ask"


def chat_url(url: str) -> str:
    """The chat-completions endpoint of an OpenAI-compatible base URL."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


JUDGE_PROMPT = """You grade a retrieval-augmented answer. Reply with JSON only:
{{"faithfulness": F, "relevance": R}} where F in [0, 1] is the share of the answer's claims that
the context supports, and R in [0, 1] is how well the answer addresses the question.

Question: {question}

Context:
{context}

Answer: {answer}"""


def judge(
    client: httpx.Client, url: str, model: str, item: QAItem, response: dict[str, Any]
) -> dict[str, float] | None:
    """Faithfulness and relevance from an LLM judge; None when its reply is unusable."""
    context = "\n---\n".join(str(s.get("content", ""))[:1500] for s in response["sources"])
    prompt = JUDGE_PROMPT.format(question=item.question, context=context, answer=response["answer"])
    body = {"model": model, "temperature": 0, "messages": [{"role": "user", "content": prompt}]}
    try:
        reply = client.post(chat_url(url), json=body)
        reply.raise_for_status()
        text = reply.json()["choices"][0]["message"]["content"]
        match = re.search(r"\{.*\}", text, re.S)
        grades = json.loads(match.group(0)) if match else {}
        return {k: min(1.0, max(0.0, float(grades[k]))) for k in ("faithfulness", "relevance")}
    except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError):
        return None


@dataclass
class _Tally:
    """Per-question observations, reduced to the report at the end."""

    rows: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.rows.setdefault(name, []).append(value)


def _ask(client: httpx.Client, url: str, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    start = time.perf_counter()
    reply = client.post(ask_url(url), json=body)
    reply.raise_for_status()
    response = reply.json()
    response.setdefault("sources", [])
    str(response["answer"])
    return response, (time.perf_counter() - start) * 1000


def evaluate_answers(
    items: list[QAItem],
    url: str,
    top_k: int | None = 5,
    timeout: float = 120.0,
    judge_url: str | None = None,
    judge_model: str = "judge",
    transport: httpx.BaseTransport | None = None,
    concurrency: int = 1,
    max_tokens: int = 256,
    prompt_version: str | None = None,
    api_key: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, float]:
    """Ask every question once (`concurrency` at a time, with `api_key` when the service
    has auth on, and any more `headers`, such as X-Variant) and reduce the answers to the
    report's metrics."""
    body: dict[str, Any] = {"max_tokens": max_tokens}
    if top_k is not None:  # None: the server's (or the variant's) own
        body["top_k"] = top_k
    if prompt_version:
        body["prompt_version"] = prompt_version
    sent = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    sent |= headers or {}
    with httpx.Client(timeout=timeout, transport=transport, headers=sent) as client:

        def one(item: QAItem) -> tuple[QAItem, dict[str, Any], float] | None:
            try:
                return (item, *_ask(client, url, {**body, "question": item.question}))
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                return None

        with ThreadPoolExecutor(max(1, concurrency)) as pool:
            answered = list(pool.map(one, items))
        tally = _Tally()
        for result in answered:
            if result is not None:
                _observe(tally, *result, max_tokens)
                if judge_url and result[0].answerable and not is_refusal(result[1]):
                    grades = judge(client, judge_url, judge_model, result[0], result[1])
                    tally.add("judge_failure_rate", float(grades is None))
                    for name, value in (grades or {}).items():
                        tally.add(f"judge_{name}", value)
    errors = sum(result is None for result in answered)
    report = {"questions": float(len(items)), "errors": float(errors)}
    latencies = tally.rows.pop("latency_ms", [])
    server_latencies = tally.rows.pop("server_latency_ms", [])
    report.update({name: mean(values) for name, values in tally.rows.items()})
    for prefix, values in (("latency", latencies), ("server_latency", server_latencies)):
        for q in (50, 95, 99):
            if values:
                report[f"{prefix}_p{q}_ms"] = float(np.percentile(values, q))
    return report


def _observe(
    tally: _Tally, item: QAItem, response: dict[str, Any], ms: float, max_tokens: int
) -> None:
    """Add one answered question's scores to the tally."""
    tally.add("latency_ms", ms)  # as the client sees it, network included
    if response.get("latency_ms") is not None:
        tally.add("server_latency_ms", float(response["latency_ms"]))
    tokens = response.get("tokens_used") or {}
    tally.add("tokens_total", float(tokens.get("total") or 0))
    tally.add("tokens_completion", float(tokens.get("completion") or 0))
    tally.add("cache_hit_share", float(bool(response.get("cache"))))
    refused = is_refusal(response)
    if not item.answerable:
        tally.add("refusal_rate_unanswerable", float(refused))
        return
    tally.add("false_refusal_rate", float(refused))
    if refused:
        return
    quality = answer_quality(response["answer"], response["sources"],
                             int(tokens.get("completion") or 0), max_tokens)  # fmt: skip
    mode = response.get("answer_mode")
    for name, value in quality.items():
        tally.add(name, value)
        if mode == "generated":  # what the model's own answers score, fallbacks aside
            tally.add(f"generated_{name}", value)
    tally.add("extractive_share", float(mode == "extractive"))
    if item.source:
        pages = {page_key(str(s.get("source", ""))) for s in response["sources"]}
        tally.add("source_retrieved", float(page_key(item.source) in pages))
