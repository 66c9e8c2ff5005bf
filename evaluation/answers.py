"""Score a running service's answers through its public `/ask` contract.

POST {"question", "top_k"} -> {"answer", "sources": [{"source", "content", "score"}],
"tokens_used": {"prompt", "completion", "total"}, "latency_ms", "request_id", "status"?}.

Judge-free metrics always run: citation rate, answer-context overlap (a groundedness proxy),
refusal rates, latency percentiles and tokens per answer. With a judge URL, an OpenAI-compatible
model also grades faithfulness and relevance (RAGAS style).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from evaluation.metrics import mean
from evaluation.retrieval import QAItem, load_qa
from ragcore.bm25 import STOPWORDS
from utils.urls import page_key

_WORD_RE = re.compile(r"[a-z0-9]+(?:[._\-][a-z0-9]+)*")
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+|\n+")
_CITE_RE = re.compile(r"\[(\d{1,2})\]")
_URL_RE = re.compile(r"https?://[^\s)\]>\"']+")
_REFUSAL_RE = re.compile(
    r"\b(i (do not|don't|cannot|can't) (know|answer|find)|not (mentioned|covered|found|provided)"
    r" in|(no|not enough) (relevant )?(information|context)|unable to (answer|find)|"
    r"cannot be answered|can't be answered|outside (the|my) (scope|context))",
    re.I,
)
_REFUSAL_STATUSES = {"refused", "no_answer", "unanswerable", "insufficient_context"}
# The BM25 stop words plus auxiliaries: overlap is measured on words that carry content.
_STOP = STOPWORDS | {"has", "have"}
SUPPORT_THRESHOLD = 0.6  # share of a sentence's content words a chunk must contain


def load_questions(qa: Path, unanswerable: Path | None = None) -> list[QAItem]:
    """The question file plus, optionally, a file whose questions are all unanswerable."""
    items = load_qa(qa)
    return items + (load_qa(unanswerable, answerable=False) if unanswerable else [])


def content_words(text: str) -> set[str]:
    """Lower-cased words minus a few stop words: what overlap is measured on."""
    return {w for w in _WORD_RE.findall(text.lower()) if w not in _STOP}


def sentences(text: str) -> list[str]:
    """Answer sentences with at least three content words (shorter ones carry no claim)."""
    parts = (s.strip() for s in _SENTENCE_RE.split(text))
    return [s for s in parts if len(content_words(s)) >= 3]


def supported_share(answer: str, contexts: list[str]) -> float:
    """Share of the answer's sentences whose content words a single retrieved chunk mostly
    contains (>= SUPPORT_THRESHOLD). 1.0 for an answer with no claim-bearing sentence."""
    claims = sentences(answer)
    if not claims:
        return 1.0
    chunk_words = [content_words(c) for c in contexts]
    supported = 0
    for claim in claims:
        words = content_words(claim)
        best = max((len(words & cw) / len(words) for cw in chunk_words), default=0.0)
        supported += best >= SUPPORT_THRESHOLD
    return supported / len(claims)


def cites_source(answer: str, sources: list[dict[str, Any]]) -> bool:
    """True when the answer names a retrieved source: a [n] marker within range, or a URL whose
    path is one of the retrieved pages."""
    if any(1 <= int(n) <= len(sources) for n in _CITE_RE.findall(answer)):
        return True
    pages = {page_key(str(s.get("source", ""))) for s in sources}
    return any(page_key(url.rstrip(".,;:")) in pages for url in _URL_RE.findall(answer))


def is_refusal(response: dict[str, Any]) -> bool:
    """A refusal by status field or by wording."""
    status = str(response.get("status") or "").lower()
    return status in _REFUSAL_STATUSES or bool(_REFUSAL_RE.search(str(response.get("answer", ""))))


def ask_url(url: str) -> str:
    """The /ask endpoint of a base URL (an /ask URL is kept)."""
    url = url.rstrip("/")
    return url if url.endswith("/ask") else url + "/ask"


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


def evaluate_answers(
    items: list[QAItem],
    url: str,
    top_k: int = 5,
    timeout: float = 120.0,
    judge_url: str | None = None,
    judge_model: str = "judge",
    transport: httpx.BaseTransport | None = None,
) -> dict[str, float]:
    """Ask every question once and reduce the answers to the report's metrics."""
    tally = _Tally()
    latencies: list[float] = []  # as the client sees them, network included
    server_latencies: list[float] = []  # as the service reports them
    errors = 0
    with httpx.Client(timeout=timeout, transport=transport) as client:
        for item in items:
            start = time.perf_counter()
            try:
                reply = client.post(ask_url(url), json={"question": item.question, "top_k": top_k})
                reply.raise_for_status()
                response = reply.json()
                response.setdefault("sources", [])
                str(response["answer"])
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                errors += 1
                continue
            latencies.append((time.perf_counter() - start) * 1000)
            if response.get("latency_ms") is not None:
                server_latencies.append(float(response["latency_ms"]))
            tokens = response.get("tokens_used") or {}
            tally.add("tokens_total", float(tokens.get("total") or 0))
            tally.add("tokens_completion", float(tokens.get("completion") or 0))
            refused = is_refusal(response)
            if not item.answerable:
                tally.add("refusal_rate_unanswerable", float(refused))
                continue
            tally.add("false_refusal_rate", float(refused))
            if refused:
                continue
            contexts = [str(s.get("content", "")) for s in response["sources"]]
            tally.add("citation_rate", float(cites_source(response["answer"], response["sources"])))
            tally.add("context_overlap", supported_share(response["answer"], contexts))
            if item.source:
                pages = {page_key(str(s.get("source", ""))) for s in response["sources"]}
                tally.add("source_retrieved", float(page_key(item.source) in pages))
            if judge_url:
                grades = judge(client, judge_url, judge_model, item, response)
                tally.add("judge_failure_rate", float(grades is None))
                for name, value in (grades or {}).items():
                    tally.add(f"judge_{name}", value)
    report = {"questions": float(len(items)), "errors": float(errors)}
    report.update({name: mean(values) for name, values in tally.rows.items()})
    for prefix, values in (("latency", latencies), ("server_latency", server_latencies)):
        for q in (50, 90, 99):
            if values:
                report[f"{prefix}_p{q}_ms"] = float(np.percentile(values, q))
    return report
