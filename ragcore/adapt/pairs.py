"""Training queries from the corpus itself, without labels: what a reader might ask of a section.

Each section yields a few queries: its page title (first section only), its heading path, the
API names it mentions, its first sentences, and a question made from an imperative or gerund
heading ("Configuring autoscaling" -> "How do I configure autoscaling?"). Every query is paired
with the section chunk that answers it best; `mine_pairs` adds hard negatives from other pages.
Nothing here looks at evaluation questions, so every pair is fair to train on.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ragcore.documents import Chunk
from ragcore.retrieval import HybridRetriever
from utils.settings import AdaptSettings

Embed = Callable[[list[str]], np.ndarray]

_API_RE = re.compile(
    r"@?\b[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+\b|\b[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)+\b"
)
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`(\"'])")
_CODE_CHARS = set("{}[]=<>;$|\\")
# Headings that start with one of these read as tasks: "Deploy a model" -> "How do I deploy a
# model?". Gerunds map to their verb ("Using ..." -> "use ...").
_VERBS = {
    "access", "add", "build", "call", "change", "check", "choose", "compose", "configure",
    "connect", "convert", "create", "customize", "debug", "define", "deploy", "disable",
    "enable", "export", "get", "handle", "implement", "inspect", "install", "launch", "load",
    "log", "manage", "migrate", "monitor", "pass", "prepare", "profile", "read", "run",
    "save", "scale", "schedule", "send", "serve", "set", "share", "specify", "start", "stop",
    "submit", "test", "train", "tune", "update", "upgrade", "use", "view", "write",
}  # fmt: skip
_GERUNDS = {
    "accessing": "access", "adding": "add", "building": "build", "calling": "call",
    "configuring": "configure", "connecting": "connect", "converting": "convert",
    "creating": "create", "customizing": "customize", "debugging": "debug",
    "defining": "define", "deploying": "deploy", "enabling": "enable", "getting": "get",
    "handling": "handle", "implementing": "implement", "installing": "install",
    "launching": "launch", "loading": "load", "logging": "log", "managing": "manage",
    "migrating": "migrate", "monitoring": "monitor", "passing": "pass", "profiling": "profile",
    "reading": "read", "running": "run", "saving": "save", "scaling": "scale",
    "scheduling": "schedule", "serving": "serve", "setting": "set", "sharing": "share",
    "specifying": "specify", "starting": "start", "submitting": "submit", "testing": "test",
    "training": "train", "tuning": "tune", "using": "use", "working": "work", "writing": "write",
}  # fmt: skip


@dataclass(frozen=True)
class TrainingQuery:
    """A query a section answers; `positives` are the rows of the section's chunks."""

    text: str
    kind: str  # title | heading | api | sentence | question
    page_url: str
    positives: tuple[int, ...]


@dataclass(frozen=True)
class TrainingExample:
    """One query with a positive chunk text and its hard negatives' texts."""

    query: str
    kind: str
    positive: str
    negatives: tuple[str, ...]


def api_names(text: str, limit: int = 2) -> list[str]:
    """The most specific API names a text mentions (dotted paths, CamelCase classes)."""
    names: dict[str, int] = {}
    for match in _API_RE.finditer(text):
        name = match.group(0).lstrip("@")
        if 6 <= len(name) <= 60 and not name[0].isdigit() and "." not in name[-1:]:
            names[name] = names.get(name, 0) + 1
    ranked = sorted(names, key=lambda n: (-names[n], -len(n), n))
    return ranked[:limit]


def sentences(text: str, limit: int = 2) -> list[str]:
    """The first prose sentences of a text (5 to 40 words, not code)."""
    found = []
    for raw in _SENTENCE_END_RE.split(" ".join(text.split())):
        words = raw.split()
        code = sum(ch in _CODE_CHARS for ch in raw)
        if 5 <= len(words) <= 40 and code <= 2:
            found.append(raw)
            if len(found) == limit:
                break
    return found


def task_question(heading: str) -> str | None:
    """A how-to question from a task-like heading, else None."""
    words = heading.split()
    if len(words) < 2:
        return None
    first = words[0].lower()
    verb = first if first in _VERBS else _GERUNDS.get(first)
    if verb is None:
        return None
    rest = " ".join(words[1:]).rstrip(".:")
    return f"How do I {verb} {rest}?"


def _clean_title(title: str) -> str:
    return " ".join(title.replace("#", " ").split())


def section_queries(
    page_title: str, section_title: str, text: str, first_section: bool
) -> list[tuple[str, str]]:
    """(query, kind) pairs for one section, most reliable first, without repeats."""
    page, section = _clean_title(page_title), _clean_title(section_title)
    out: list[tuple[str, str]] = []
    if first_section and page:
        out.append((page, "title"))
    if section and section != page:
        out.append((f"{page} {section}" if page else section, "heading"))
    question = task_question(section or page)
    if question:
        out.append((question, "question"))
    out += [(name, "api") for name in api_names(text)]
    out += [(sentence, "sentence") for sentence in sentences(text)]
    seen: set[str] = set()
    unique = []
    for query, kind in out:
        key = query.lower()
        if key not in seen:
            seen.add(key)
            unique.append((query, kind))
    return unique


def corpus_queries(chunks: Sequence[Chunk], max_pages: int = 2) -> list[TrainingQuery]:
    """Every section's queries over the chunk list (rows index `chunks`), in corpus order."""
    sections: dict[str, list[int]] = {}
    for row, chunk in enumerate(chunks):
        sections.setdefault(chunk.source, []).append(row)
    first_source: dict[str, str] = {}
    for source, rows in sections.items():
        first_source.setdefault(chunks[rows[0]].page_url, source)
    queries: list[TrainingQuery] = []
    for source, rows in sections.items():
        head = chunks[rows[0]]
        body = " ".join(chunks[r].text for r in rows)
        first = first_source[head.page_url] == source
        for query, kind in section_queries(head.page_title, head.section_title, body, first):
            queries.append(TrainingQuery(query, kind, head.page_url, tuple(rows)))
    # A query that many pages yield ("This API is stable across Ray releases.", a common class
    # name) identifies none of them: keep only queries at most `max_pages` pages share.
    pages: dict[str, set[str]] = {}
    for made in queries:
        pages.setdefault(made.text.lower(), set()).add(made.page_url)
    return [q for q in queries if len(pages[q.text.lower()]) <= max_pages]


def sample_queries(queries: list[TrainingQuery], limit: int, seed: int) -> list[TrainingQuery]:
    """At most `limit` queries, drawn evenly over the corpus with a fixed seed (reproducible,
    so a resumed training sees the same data)."""
    if len(queries) <= limit:
        return list(queries)
    picked = random.Random(seed).sample(range(len(queries)), limit)
    return [queries[i] for i in sorted(picked)]


Ranker = Callable[[list[str]], list[list[int]]]  # queries -> chunk rows, best first


@dataclass(frozen=True)
class Mined:
    """Rows of one query's positive chunk and of its negatives (hard ones first)."""

    positive: int
    negatives: tuple[int, ...]


def _positive(query: TrainingQuery, chunks: Sequence[Chunk], ranked: list[int]) -> int:
    """The section chunk that answers the query: the one the ranker puts highest, else the one
    that holds the query's text, else the section's first. (A random chunk of the section often
    does not answer it, while the hard negatives resemble it most: a learner would then be
    taught that resembling the query means irrelevance.)"""
    own = set(query.positives)
    for row in ranked:
        if row in own:
            return row
    needle = query.text.lower()
    return next((r for r in query.positives if needle in chunks[r].text.lower()),
                query.positives[0])  # fmt: skip


def mine_pairs(
    queries: list[TrainingQuery],
    chunks: Sequence[Chunk],
    rank: Ranker,
    per_query: int,
    skip: int = 0,
    random_negatives: int = 0,
    seed: int = 0,
) -> list[Mined]:
    """For each query, its positive (`_positive`) and hard negatives: the best-ranked chunks
    from *other* pages, after the first `skip` such chunks (the very top is likelier an
    unlabelled positive); then `random_negatives` chunks drawn (seeded) from the whole corpus.
    Those easy ones give a learner that starts at chance (a cross-encoder's fresh head) an
    easier signal to start from. A chunk from the query's own page, or with the same text as
    a positive, is never a negative."""
    ranked = rank([q.text for q in queries])
    draw = random.Random(seed)
    mined = []
    for query, rows in zip(queries, ranked, strict=True):
        own_texts = {chunks[r].text for r in query.positives}

        def other(row: int, page: str = query.page_url, texts: set[str] = own_texts) -> bool:
            return chunks[row].page_url != page and chunks[row].text not in texts

        hard = [r for r in rows if other(r)][skip : skip + per_query]
        drawn = draw.sample(range(len(chunks)), min(len(chunks), 4 * random_negatives))
        easy = [r for r in drawn if other(r) and r not in hard][:random_negatives]
        mined.append(Mined(_positive(query, chunks, rows), tuple(hard + easy)))
    return mined


def training_examples(
    queries: list[TrainingQuery],
    mined: list[Mined],
    chunks: Sequence[Chunk],
    text_of: Callable[[Chunk], str],
) -> list[TrainingExample]:
    """One example per query: its positive's text and its negatives' texts. Queries without a
    negative are left out."""
    return [TrainingExample(query.text, query.kind, text_of(chunks[found.positive]),
                            tuple(text_of(chunks[r]) for r in found.negatives))
            for query, found in zip(queries, mined, strict=True) if found.negatives]  # fmt: skip


def hybrid_ranker(retriever: HybridRetriever, embed: Embed, depth: int) -> Ranker:
    """A `Ranker` over the service's own hybrid retrieval (one hit per page, as served)."""
    rows = {chunk.id: row for row, chunk in enumerate(retriever.published.chunks)}

    def rank(queries: list[str]) -> list[list[int]]:
        ranked: list[list[int]] = []
        for start in range(0, len(queries), 256):
            batch = queries[start : start + 256]
            found = retriever.search_many(batch, embed(batch), [depth] * len(batch))
            ranked += [[rows[hit.chunk.id] for hit in hits] for hits in found]
        return ranked

    return rank


def corpus_examples(
    chunks: Sequence[Chunk], rank: Ranker, settings: AdaptSettings, titles: bool = True
) -> list[TrainingExample]:
    """The whole unsupervised recipe: queries from every section, a seeded sample of
    `max_queries`, hard negatives from `rank`, one example per query."""
    queries = sample_queries(corpus_queries(chunks), settings.max_queries, settings.seed)
    mined = mine_pairs(queries, chunks, rank, settings.negatives, settings.skip_negatives,
                       settings.random_negatives, settings.seed)  # fmt: skip
    return training_examples(queries, mined, chunks, lambda c: c.embed_text(titles))
