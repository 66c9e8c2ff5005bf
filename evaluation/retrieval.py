"""Retrieval quality: ranking metrics, Ray-docs QA scoring and BEIR scoring.

Everything here retrieves through `HybridRetriever.search`, the code the service runs, with
queries embedded by the index's own model; only the scoring is specific to evaluation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.metrics import dedupe, hit_at_k, mean, ndcg_at_k, recall_at_k, reciprocal_rank
from pipelines.build import index_pages
from ragcore.documents import Page, Section
from ragcore.embedding import LocalQueryEmbedder, SentenceEmbedder
from ragcore.index_format import MANIFEST_FILE, PublishedIndex, current_version
from ragcore.rerank import PairScorer, rerank_many
from ragcore.retrieval import HybridRetriever, Mode, RetrievedChunk
from ragcore.version_models import load_reranker
from utils.errors import InputError
from utils.models import QueryEncoder
from utils.settings import BuildSettings, RetrievalSettings
from utils.urls import page_key, section_key

# --- searching as the service does -----------------------------------------------------------


class Searcher:
    """The service's retrieval path: the index's query model (its adapted embedder, if it
    trained one) run by the service's query encoder (`encoder`, ServiceSettings.query_encoder)
    unless `embedder` is given, plus `HybridRetriever`, and its reranker as the service would
    use it."""

    def __init__(
        self,
        published: PublishedIndex,
        settings: RetrievalSettings,
        embedder: SentenceEmbedder | None = None,
        reranker: PairScorer | None = None,
        rerank_candidates: int | None = None,
        encoder: QueryEncoder = "torch",
    ) -> None:
        self.retriever = HybridRetriever(published, settings)
        self.settings = settings
        self._embed_texts: Callable[[list[str]], np.ndarray] | None = (
            embedder.embed if embedder is not None else None
        )
        self.encoder = encoder
        if reranker is None and settings.rerank:
            reranker = load_reranker(published)
        self.reranker = reranker
        self.rerank_candidates = rerank_candidates or settings.rerank_candidates
        self._vectors: dict[str, np.ndarray] = {}  # shared by every mode scored on this index

    def _embed(self, queries: list[str]) -> None:
        todo = [q for q in dict.fromkeys(queries) if q not in self._vectors]
        if not todo:
            return
        if self._embed_texts is None:
            model = self.retriever.published.query_model
            self._embed_texts = LocalQueryEmbedder(model, chunk_size=16,
                                                   encoder=self.encoder).embed_now  # fmt: skip
        self._vectors.update(zip(todo, self._embed_texts(todo), strict=True))

    def search(self, queries: list[str], k: int, mode: Mode) -> list[list[RetrievedChunk]]:
        """Top `k` chunks for each query, in `mode` (reranked when there is a reranker)."""
        depth = max(k, self.rerank_candidates) if self.reranker else k
        titles = bool(self.retriever.published.manifest.get("prepend_titles", True))
        results: list[list[RetrievedChunk]] = []
        for start in range(0, len(queries), 256):  # bounds the (queries x chunks) score matrix
            batch = queries[start : start + 256]
            vectors = None
            if mode != "lexical":
                self._embed(batch)
                vectors = np.stack([self._vectors[q] for q in batch])
            found = self.retriever.search_many(batch, vectors, [depth] * len(batch), mode)
            if self.reranker is not None:
                found = rerank_many(self.reranker, batch, found, [k] * len(batch),
                                    self.rerank_candidates, titles,
                                    self.settings.rerank_batch_size,
                                    self.settings.rerank_fused_weight)  # fmt: skip
            results += found
        return results


# --- Ray docs question set -------------------------------------------------------------------


@dataclass(frozen=True)
class QAItem:
    """One evaluation question; `source` is the page (and #section) that answers it, if any."""

    question: str
    source: str = ""
    answerable: bool = True


def load_qa(path: Path, answerable: bool | None = None) -> list[QAItem]:
    """Questions from a JSON-lines file; `answerable` overrides every line's own flag."""
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            question = str(row["question"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(f"{path}:{number}: expected a JSON object with a question") from exc
        flag = bool(row.get("answerable", True)) if answerable is None else answerable
        items.append(QAItem(question, str(row.get("source") or ""), flag))
    if not items:
        raise InputError(f"{path} holds no questions")
    return items


def _miss_view(hit: RetrievedChunk) -> dict[str, Any]:
    """What the misses file shows of one retrieved chunk."""
    return {
        "source": hit.chunk.source,
        "score": round(hit.score, 5),
        "dense_rank": hit.dense_rank,
        "lexical_rank": hit.lexical_rank,
        "text": hit.chunk.text[:300],
    }


def score_qa(
    searcher: Searcher, items: list[QAItem], ks: list[int], mode: Mode, miss_k: int = 5
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Page and section hit@k and MRR over the questions that have a source; also the misses
    (no source-page chunk in the top `miss_k`) with what was retrieved instead."""
    scored = [i for i in items if i.source]
    depth = max(*ks, miss_k)
    results = searcher.search([i.question for i in scored], depth, mode)
    rows: dict[str, list[float]] = {}
    misses = []
    for item, hits in zip(scored, results, strict=True):
        want_page, want_section = {page_key(item.source)}, {section_key(item.source)}
        pages = [page_key(h.chunk.source) for h in hits]
        # A source without an anchor names a whole page: any section of it is the right one.
        sections = [section_key(h.chunk.source) for h in hits] if "#" in item.source else pages
        for k in ks:
            rows.setdefault(f"page_hit@{k}", []).append(hit_at_k(pages, want_page, k))
            rows.setdefault(f"section_hit@{k}", []).append(hit_at_k(sections, want_section, k))
        rows.setdefault("mrr", []).append(reciprocal_rank(pages, want_page, depth))
        rows.setdefault("section_mrr", []).append(reciprocal_rank(sections, want_section, depth))
        if not hit_at_k(pages, want_page, miss_k):
            retrieved = [_miss_view(h) for h in hits[:miss_k]]
            misses.append(
                {"question": item.question, "source": item.source, "retrieved": retrieved}
            )
    metrics = {name: mean(values) for name, values in rows.items()}
    return {"questions": float(len(scored)), **metrics}, misses


# --- BEIR ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BeirData:
    """A BEIR dataset: corpus id -> (title, text), query id -> text, query id -> {doc: grade}."""

    name: str
    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def _jsonl(path: Path) -> Iterable[dict[str, Any]]:
    if not path.exists():
        raise InputError(f"{path} is missing: a BEIR dataset needs corpus.jsonl and queries.jsonl")
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def load_beir(data_dir: Path, split: str = "test") -> BeirData:
    """Load a BEIR dataset; keeps only the queries judged in `qrels/<split>.tsv`."""
    qrels_path = data_dir / "qrels" / f"{split}.tsv"
    if not qrels_path.exists():
        raise InputError(f"{qrels_path} is missing: pick a split that {data_dir} has")
    corpus = {
        str(d["_id"]): (str(d.get("title") or ""), str(d["text"]))
        for d in _jsonl(data_dir / "corpus.jsonl")
    }
    qrels: dict[str, dict[str, int]] = {}
    for line in qrels_path.read_text(encoding="utf-8").splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) >= 3:
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    queries = {
        str(q["_id"]): str(q["text"])
        for q in _jsonl(data_dir / "queries.jsonl")
        if str(q["_id"]) in qrels
    }
    return BeirData(data_dir.name, corpus, queries, {q: qrels[q] for q in queries})


def beir_pages(corpus: Mapping[str, tuple[str, str]]) -> list[Page]:
    """One page per document, its URL the doc id, so scores map back to qrels. The title is the
    page title only (section title empty) so it is prepended once, not twice."""
    return [
        Page(url=doc_id, title=title, sections=[Section(doc_id, title, "", "", text)])
        for doc_id, (title, text) in corpus.items()
    ]


def corpus_fingerprint(data: BeirData, settings: BuildSettings) -> str:
    """Digest of the corpus and of everything that shapes its index (chunking, model)."""
    digest = hashlib.sha256()
    digest.update(settings.chunking.model_dump_json().encode())
    digest.update(settings.embedding.model_name.encode())
    if settings.adapt.enabled:  # an adapted index is another index
        digest.update(settings.adapt.model_dump_json().encode())
    for doc_id in sorted(data.corpus):
        title, text = data.corpus[doc_id]
        digest.update(f"\x1e{doc_id}\x1f{title}\x1f{text}".encode())
    return digest.hexdigest()[:16]


def current_beir_index(data: BeirData, settings: BuildSettings) -> Path | None:
    """The published version in `settings.index_dir` when it was built from this very corpus
    with these chunking and model settings, else None."""
    root = settings.index_dir
    version = current_version(root)
    if not version:
        return None
    manifest = json.loads((root / version / MANIFEST_FILE).read_text(encoding="utf-8"))
    return (
        root / version
        if manifest.get("corpus_fingerprint") == corpus_fingerprint(data, settings)
        else None
    )


def build_beir_index(data: BeirData, settings: BuildSettings) -> Path:
    """Chunk, embed (Ray actor pool, checkpointed) and publish the corpus into
    `settings.index_dir` through the build job's own path; Ray must be initialised."""
    extra = {"corpus_fingerprint": corpus_fingerprint(data, settings)}
    return index_pages(beir_pages(data.corpus), settings, extra=extra).path


def score_beir(searcher: Searcher, data: BeirData, mode: Mode, deep: int = 100) -> dict[str, float]:
    """nDCG@10, MRR@10, recall@10 and recall@`deep` by document id. The @10 figures rank the
    service's exact candidate list (k = candidates); recall@deep asks for more chunks."""
    qids = list(data.queries)
    texts = [data.queries[q] for q in qids]
    shallow = max(searcher.settings.candidates, 10)
    top = searcher.search(texts, shallow, mode)
    wide = searcher.search(texts, max(shallow, 3 * deep), mode)
    rows: dict[str, list[float]] = {}
    for qid, hits, wide_hits in zip(qids, top, wide, strict=True):
        gains = {doc: float(g) for doc, g in data.qrels[qid].items()}
        relevant = {doc for doc, g in gains.items() if g > 0}
        docs = dedupe(h.chunk.page_url for h in hits)
        rows.setdefault("ndcg@10", []).append(ndcg_at_k(docs, gains, 10))
        rows.setdefault("recall@10", []).append(recall_at_k(docs, relevant, 10))
        rows.setdefault("mrr@10", []).append(reciprocal_rank(docs, relevant, 10))
        deep_docs = dedupe(h.chunk.page_url for h in wide_hits)
        rows.setdefault(f"recall@{deep}", []).append(recall_at_k(deep_docs, relevant, deep))
    return {"queries": float(len(qids)), **{name: mean(v) for name, v in rows.items()}}
