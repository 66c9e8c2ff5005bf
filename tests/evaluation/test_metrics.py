"""Ranking metrics against hand-computed values, and the scoring of QA and BEIR runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import faiss
import numpy as np
import pytest

from evaluation.metrics import (
    dedupe,
    format_table,
    hit_at_k,
    ndcg_at_k,
    recall_at_k,
    reciprocal_rank,
)
from evaluation.retrieval import (
    Searcher,
    beir_pages,
    corpus_fingerprint,
    current_beir_index,
    load_beir,
    load_qa,
    score_beir,
    score_qa,
)
from ragcore.documents import Chunk
from ragcore.index_format import PublishedIndex, publish
from utils.errors import InputError
from utils.settings import BuildSettings, RetrievalSettings


def test_hit_at_k() -> None:
    ranked = ["x", "y", "z"]
    assert [hit_at_k(ranked, {"z"}, k) for k in (1, 2, 3, 10)] == [0.0, 0.0, 1.0, 1.0]
    assert hit_at_k(ranked, {"q"}, 3) == 0.0


def test_reciprocal_rank() -> None:
    assert reciprocal_rank(["x", "y", "z"], {"z", "y"}) == pytest.approx(1 / 2)
    assert reciprocal_rank(["x", "y", "z"], {"z"}, k=2) == 0.0
    assert reciprocal_rank(["z"], {"z"}) == 1.0


def test_recall_at_k() -> None:
    ranked = ["a", "x", "c"]
    relevant = {"a", "b", "c", "d"}
    assert recall_at_k(ranked, relevant, 1) == pytest.approx(0.25)
    assert recall_at_k(ranked, relevant, 3) == pytest.approx(0.5)
    assert recall_at_k(ranked, set(), 3) == 0.0


def test_ndcg_binary_by_hand() -> None:
    # DCG = 1/log2(3) + 1/log2(4) = 0.63093 + 0.5; IDCG = 1 + 0.63093 + 0.5 (3 relevant, k=3)
    value = ndcg_at_k(["d1", "d2", "d3"], {"d2": 1, "d3": 1, "d4": 1}, 3)
    assert value == pytest.approx(1.130930 / 2.130930, abs=1e-6)
    assert value == pytest.approx(0.530721, abs=1e-6)


def test_ndcg_graded_and_edges() -> None:
    # DCG = 1 + 2/log2(3) = 2.261860; ideal order (b, a): 2 + 1/log2(3) = 2.630930
    assert ndcg_at_k(["a", "b"], {"a": 1, "b": 2}, 10) == pytest.approx(0.859719, abs=1e-6)
    assert ndcg_at_k(["b", "a"], {"a": 1, "b": 2}, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["x"], {"a": 1}, 10) == 0.0
    assert ndcg_at_k(["a"], {}, 10) == 0.0
    # Only the first k count: the relevant doc at rank 2 is outside k=1.
    assert ndcg_at_k(["x", "a"], {"a": 1}, 1) == 0.0
    assert ndcg_at_k(["x", "a"], {"a": 1}, 2) == pytest.approx(1 / math.log2(3))


def test_dedupe_keeps_best_rank() -> None:
    assert dedupe(["d1", "d1", "d2", "d1", "d3"]) == ["d1", "d2", "d3"]


def _published(chunks: list[Chunk], vectors: np.ndarray) -> PublishedIndex:
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors.astype(np.float32))
    manifest = {"version": "v1", "embedding_model": "fake", "prepend_titles": False}
    return PublishedIndex(Path("/nonexistent"), manifest, index, chunks)


def _chunk(n: int, page: str, anchor: str, text: str) -> Chunk:
    source = f"{page}#{anchor}" if anchor else page
    return Chunk(f"c{n}", text, source, page, "", "")


class _OneHotEmbedder:
    """Maps a query to the unit vector of the digit it contains: dense ranks are predictable."""

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 4), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i, int(next(ch for ch in text if ch.isdigit()))] = 1.0
        return out


MIRROR = "http://127.0.0.1:8123/en/master"
# Plain fusion, so these tests check the scoring and not the retrieval options.
PLAIN = RetrievalSettings(max_per_page=0, dedupe=False, page_bonus=0.0)


def test_score_qa_compares_paths_and_sections(tmp_path: Path) -> None:
    chunks = [
        _chunk(0, f"{MIRROR}/serve/index.html", "scaling", "autoscaling replicas serve"),
        _chunk(1, f"{MIRROR}/data/loading.html", "csv", "read_csv loads csv files datasets"),
        _chunk(2, f"{MIRROR}/data/loading.html", "parquet", "read_parquet parquet files"),
        _chunk(3, f"{MIRROR}/train/gpus.html", "", "torchtrainer gpus use_gpu"),
    ]
    published = _published(chunks, np.eye(4, dtype=np.float32))
    searcher = Searcher(published, PLAIN, embedder=_OneHotEmbedder())  # type: ignore[arg-type]
    rows: list[dict[str, str]] = [
        # Lexical: only chunk 0 matches; the source is the directory form of index.html.
        {"question": "autoscaling 0", "source": "https://docs.ray.io/en/master/serve/#scaling"},
        # Right page, wrong section: chunk 2 ranks first ("parquet" twice).
        {
            "question": "parquet files 2",
            "source": "https://docs.ray.io/en/master/data/loading.html#csv",
        },
        # No anchor in the source: any section of the page counts.
        {"question": "torchtrainer 3", "source": "https://docs.ray.io/en/master/train/gpus.html"},
        # No chunk matches at all.
        {"question": "kuberay helm 1", "source": "https://docs.ray.io/en/master/cluster/k.html"},
    ]
    (tmp_path / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    items = load_qa(tmp_path / "qa.jsonl")
    metrics, misses = score_qa(searcher, items, [1, 3], "lexical", miss_k=3)
    assert metrics["questions"] == 4
    assert metrics["page_hit@1"] == pytest.approx(3 / 4)
    assert metrics["section_hit@1"] == pytest.approx(2 / 4)
    # "files" also matches chunk 1, the csv section, at rank 2.
    assert metrics["section_hit@3"] == pytest.approx(3 / 4)
    assert metrics["mrr"] == pytest.approx(3 / 4)
    assert metrics["section_mrr"] == pytest.approx((1 + 0.5 + 1) / 4)
    assert [m["question"] for m in misses] == ["kuberay helm 1"]
    # Dense: the one-hot query vectors point straight at chunk n (the question's digit).
    dense, _ = score_qa(searcher, items, [1], "dense", miss_k=1)
    assert dense["page_hit@1"] == pytest.approx(3 / 4)  # question 4's digit 1 is the data page
    assert dense["section_hit@1"] == pytest.approx(2 / 4)


def test_load_qa_flags_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(
        '{"question": "q1", "source": "s"}\n\n{"question": "q2", "answerable": false}\n'
    )
    items = load_qa(path)
    assert [(i.question, i.answerable) for i in items] == [("q1", True), ("q2", False)]
    assert all(not i.answerable for i in load_qa(path, answerable=False))
    path.write_text("not json\n")
    with pytest.raises(InputError, match=r"qa\.jsonl:1"):
        load_qa(path)


def _beir_dir(tmp_path: Path) -> Path:
    root = tmp_path / "tiny"
    (root / "qrels").mkdir(parents=True)
    docs = {"d1": ("Alpha", "alpha beta"), "d2": ("Gamma", "gamma delta"), "d3": ("", "epsilon")}
    (root / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": k, "title": t, "text": x}) for k, (t, x) in docs.items())
    )
    queries = {"q1": "gamma", "q2": "alpha", "q3": "unjudged"}
    (root / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": k, "text": v}) for k, v in queries.items())
    )
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td1\t1\n")
    return root


def test_load_beir_and_fingerprint(tmp_path: Path) -> None:
    data = load_beir(_beir_dir(tmp_path))
    assert set(data.queries) == {"q1", "q2"}  # q3 has no judgment
    assert data.qrels["q2"] == {"d1": 1}
    pages = beir_pages(data.corpus)
    assert pages[0].url == "d1" and pages[0].sections[0].page_title == "Alpha"
    settings = BuildSettings(index_dir=tmp_path / "idx")
    before = corpus_fingerprint(data, settings)
    data.corpus["d3"] = ("", "changed")
    assert corpus_fingerprint(data, settings) != before
    with pytest.raises(InputError, match=r"dev\.tsv"):
        load_beir(_beir_dir(tmp_path / "x"), "dev")


def test_beir_index_reused_only_for_same_corpus(tmp_path: Path) -> None:
    data = load_beir(_beir_dir(tmp_path))
    settings = BuildSettings(index_dir=tmp_path / "idx")
    assert current_beir_index(data, settings) is None
    chunks = [_chunk(i, d, "", t) for i, (d, (_, t)) in enumerate(data.corpus.items())]
    extra = {"corpus_fingerprint": corpus_fingerprint(data, settings)}
    path = publish(chunks, np.eye(3, dtype=np.float32), settings, 3, extra=extra)
    assert current_beir_index(data, settings) == path
    other = settings.model_copy(
        update={"chunking": settings.chunking.model_copy(update={"chunk_size": 300})}
    )
    assert current_beir_index(data, other) is None


def test_score_beir_dedupes_docs(tmp_path: Path) -> None:
    data = load_beir(_beir_dir(tmp_path))
    chunks = [
        _chunk(0, "d1", "", "alpha beta"),
        _chunk(1, "d1", "", "alpha again alpha"),
        _chunk(2, "d2", "", "gamma delta"),
        _chunk(3, "d3", "", "epsilon"),
    ]
    published = _published(chunks, np.eye(4, dtype=np.float32))
    searcher = Searcher(published, PLAIN)
    metrics = score_beir(searcher, data, "lexical")
    # q1 "gamma" finds d2; q2 "alpha" finds d1 through two chunks, which must count once:
    # counted twice, DCG would exceed the ideal and nDCG would pass 1.
    assert metrics["queries"] == 2
    assert metrics["ndcg@10"] == pytest.approx(1.0)
    assert metrics["mrr@10"] == pytest.approx(1.0)
    assert metrics["recall@100"] == pytest.approx(1.0)


def test_format_table_lines() -> None:
    lines = format_table({"dense": {"n": 213, "hit": 0.5}, "hybrid": {"n": 213, "hit": 0.75}})
    assert lines[0] == "| metric | dense | hybrid |"
    assert lines[2] == "| n | 213 | 213 |"
    assert lines[3] == "| hit | 0.500 | 0.750 |"


def test_retriever_dedupe_and_page_cap() -> None:
    """Options the ablation measures: repeated text and extra chunks of one page give way."""
    from ragcore.retrieval import HybridRetriever

    chunks = [
        _chunk(0, "p1", "a", "Ray Serve autoscaling: scale replicas."),
        _chunk(1, "p2", "b", "ray serve AUTOSCALING, scale replicas"),  # same words as chunk 0
        _chunk(2, "p1", "c", "autoscaling replicas again on page one"),
        _chunk(3, "p3", "", "autoscaling elsewhere"),
    ]
    published = _published(chunks, np.eye(4, dtype=np.float32))

    def ids(**update: object) -> list[str]:
        settings = RetrievalSettings().model_copy(update=update)
        hits = HybridRetriever(published, settings).search(
            "autoscaling replicas", None, 4, "lexical"
        )
        return [h.chunk.id for h in hits]

    everything = ids(dedupe=False, max_per_page=0)
    assert sorted(everything) == ["c0", "c1", "c2", "c3"]
    kept = ids(dedupe=True, max_per_page=0)
    assert len(kept) == 3 and len({"c0", "c1"} & set(kept)) == 1
    capped = ids(dedupe=False, max_per_page=1)
    assert len(capped) == 3 and not {"c0", "c2"} <= set(capped)


def test_page_bonus_lifts_a_page_with_several_matches() -> None:
    """Two matching sections of one page outrank one slightly better chunk of another page."""
    from ragcore.retrieval import HybridRetriever

    chunks = [
        _chunk(0, "solo", "", "autoscaling replicas autoscaling"),
        _chunk(1, "multi", "a", "autoscaling replicas"),
        _chunk(2, "multi", "b", "autoscaling of replicas on a cluster"),
    ]
    published = _published(chunks, np.eye(3, dtype=np.float32))

    def pages(bonus: float) -> list[str]:
        settings = RetrievalSettings(max_per_page=1, page_bonus=bonus, rrf_k=10)
        hits = HybridRetriever(published, settings).search(
            "autoscaling replicas", None, 2, "lexical"
        )
        return [h.chunk.page_url for h in hits]

    assert pages(0.0) == ["solo", "multi"]
    assert pages(0.5) == ["multi", "solo"]


def test_cli_ray_qa_prints_table_json_and_misses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import evaluate

    chunks = [
        _chunk(0, f"{MIRROR}/serve/autoscaling.html", "config", "autoscaling config replicas"),
        _chunk(1, f"{MIRROR}/data/loading.html", "csv", "read_csv loads csv files"),
    ]
    settings = BuildSettings(index_dir=tmp_path / "idx")
    publish(chunks, np.eye(2, dtype=np.float32), settings, 2)
    qa = tmp_path / "qa.jsonl"
    rows = [
        {
            "question": "autoscaling config",
            "source": "https://docs.ray.io/en/master/serve/autoscaling.html",
        },
        {"question": "kuberay", "source": "https://docs.ray.io/en/master/cluster/k.html"},
    ]
    qa.write_text("\n".join(json.dumps(r) for r in rows))
    misses = tmp_path / "misses.jsonl"
    argv = ["ray-qa", "--qa", str(qa), "--index-dir", str(settings.index_dir), "--mode", "lexical"]
    assert evaluate.main([*argv, "--k", "1", "--write-misses", str(misses)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[1] == "| metric | lexical |"
    result = json.loads(out[-1])["results"]["lexical"]
    assert result["page_hit@1"] == 0.5 and result["questions"] == 2
    missed = [json.loads(line) for line in misses.read_text().splitlines()]
    assert [m["question"] for m in missed] == ["kuberay"] and missed[0]["mode"] == "lexical"
    assert evaluate.main(["ray-qa", "--qa", str(qa), "--index-dir", str(tmp_path / "none")]) == 2
