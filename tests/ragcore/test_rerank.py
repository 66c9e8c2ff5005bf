"""Reranking the fused candidates: order, cut, and one scorer call per batch."""

from __future__ import annotations

import numpy as np

from ragcore.documents import Chunk
from ragcore.rerank import rerank_many
from ragcore.retrieval import RetrievedChunk


class LengthScorer:
    """Scores a pair by passage length (a stand-in with a known order); counts its calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def score(self, pairs: list[tuple[str, str]], batch_size: int | None = None) -> np.ndarray:
        self.calls.append(len(pairs))
        return np.array([len(passage) for _, passage in pairs], dtype=np.float32)


def _hit(text: str, score: float) -> RetrievedChunk:
    chunk = Chunk(text, text, f"p/{text}", f"p/{text}", "", "")
    return RetrievedChunk(chunk, score, dense_rank=1, cosine=0.5)


def test_candidates_are_reordered_and_cut_in_one_call() -> None:
    scorer = LengthScorer()
    first = [_hit("a", 0.9), _hit("ccc", 0.8), _hit("bb", 0.7), _hit("dddd", 0.6)]
    second = [_hit("x", 0.5), _hit("yy", 0.4)]
    out = rerank_many(scorer, ["q1", "q2"], [first, second], [2, 5], candidates=3,
                      titles=False)  # fmt: skip
    assert [h.chunk.text for h in out[0]] == ["ccc", "bb"]  # "dddd" was never a candidate
    assert [h.chunk.text for h in out[1]] == ["yy", "x"]
    assert out[0][0].score == 3.0 and out[0][0].cosine == 0.5 and out[0][0].dense_rank == 1
    assert scorer.calls == [5]


def test_hits_past_the_candidates_follow_in_fused_order() -> None:
    hits = [_hit("a", 0.9), _hit("bb", 0.8), _hit("ccc", 0.7), _hit("d", 0.6)]
    out = rerank_many(LengthScorer(), ["q"], [hits], [4], candidates=2, titles=False)
    assert [h.chunk.text for h in out[0]] == ["bb", "a", "ccc", "d"]


def test_the_fused_weight_blends_the_two_orders() -> None:
    """Reranker order (by length): e, d, c, b, a; fused order: a, b, c, d, e."""
    hits = [_hit(text, 1.0 - i / 10) for i, text in enumerate(["a", "bb", "ccc", "dddd", "eeeee"])]

    def order(weight: float) -> list[str]:
        out = rerank_many(LengthScorer(), ["q"], [hits], [5], 5, False, None, weight)
        return [h.chunk.text for h in out[0]]

    assert order(0.0) == ["eeeee", "dddd", "ccc", "bb", "a"]
    assert order(10.0) == ["a", "bb", "ccc", "dddd", "eeeee"]
    # Equal weights: reciprocal ranks favour what either puts first over what both put in the
    # middle; a tie keeps the fused order.
    assert order(1.0) == ["a", "eeeee", "bb", "dddd", "ccc"]
    assert order(0.9)[0] == "eeeee" and order(1.1)[0] == "a"
    # Per-query weights.
    both = rerank_many(LengthScorer(), ["q", "q"], [hits, hits], [1, 1], 5, False, None, [0.0, 5.0])
    assert [out[0].chunk.text for out in both] == ["eeeee", "a"]
