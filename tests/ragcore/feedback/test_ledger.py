"""The feedback ledger: records, ratings, the review queue, tenants apart, restarts."""

from __future__ import annotations

from pathlib import Path

from ragcore.feedback.ledger import SqliteFeedback
from ragcore.feedback.records import AnswerRecord, Feedback

ANSWER = AnswerRecord("r1", "acme", "ask", "docs", "main@1", "How do I batch?", "Use serve.batch",
                      ({"title": "Batching", "source": "u", "score": 0.9, "snippet": "s"},),
                      "generated", "generator")  # fmt: skip
INVALID = AnswerRecord("r2", "acme", "ask", "docs", "canary@2", "Why?", "Because",
                       mode="extractive", path="generator",
                       validation_reasons=("ungrounded",),
                       reasons=("validation_failed",))  # fmt: skip


def test_a_rating_is_linked_to_the_variant_and_a_thumbs_down_queues_the_answer(
    tmp_path: Path,
) -> None:
    ledger = SqliteFeedback(tmp_path / "feedback.db")
    assert ledger.record([ANSWER, INVALID]) == 1  # the invalid answer awaits review
    up = ledger.rate(Feedback("r1", "acme", "k1", "up"), queue_down=True)
    assert up is not None and up.variant == "main@1" and not up.queued
    down = ledger.rate(Feedback("r1", "acme", "k1", "down", "wrong page"), queue_down=True)
    assert down is not None and down.queued  # a change of mind replaces the rating
    assert ledger.counts() == {"main@1": {"up": 0, "down": 1}}
    items = ledger.queue()
    assert [(i.record.request_id, i.reasons) for i in items] == [
        ("r2", ("validation_failed",)), ("r1", ("thumbs_down",))]  # fmt: skip
    assert items[1].comment == "wrong page" and items[1].record.sources[0]["title"] == "Batching"


def test_tenants_never_reach_each_others_answers(tmp_path: Path) -> None:
    ledger = SqliteFeedback(tmp_path / "feedback.db")
    same_id = AnswerRecord("r1", "globex", "ask", "docs", "main@1", "Other question")
    ledger.record([ANSWER, same_id])  # a client may choose its X-Request-ID
    assert ledger.rate(Feedback("r1", "initech", "k9", "down"), queue_down=True) is None
    assert ledger.rate(Feedback("r1", "globex", "k2", "down"), queue_down=True) is not None
    queued = ledger.queue(tenant="acme")
    assert queued == []  # globex's rating did not touch acme's answer
    assert [i.record.question for i in ledger.queue(tenant="globex")] == ["Other question"]


def test_marking_reviewed_and_reopening_on_a_new_thumbs_down(tmp_path: Path) -> None:
    ledger = SqliteFeedback(tmp_path / "feedback.db")
    ledger.record([INVALID])
    marked = ledger.mark("acme", "r2", "ops", "prompt fixed", ts=100.0)
    assert marked is not None and marked.reviewed_at == 100.0 and marked.note == "prompt fixed"
    assert ledger.queue() == [] and len(ledger.queue(status="reviewed")) == 1
    assert ledger.mark("acme", "nope", "ops", "") is None
    ledger.rate(Feedback("r2", "acme", "k1", "down"), queue_down=True)
    (again,) = ledger.queue()
    assert again.reasons == ("validation_failed", "thumbs_down") and again.reviewed_at is None


def test_everything_survives_a_restart_and_old_unrated_answers_expire(tmp_path: Path) -> None:
    path = tmp_path / "state" / "feedback.db"
    ledger = SqliteFeedback(path, retain_s=1e12)  # keeps the backdated records at first
    old = AnswerRecord("old", "acme", "ask", "docs", "main@1", "q", ts=1.0)
    rated_old = AnswerRecord("rated", "acme", "ask", "docs", "main@1", "q", ts=1.0)
    ledger.record([ANSWER, INVALID, rated_old])
    ledger.rate(Feedback("rated", "acme", "k1", "up"), queue_down=True)
    ledger.close()
    reopened = SqliteFeedback(path, retain_s=3600)
    reopened.record([old])  # the first write after a start prunes
    assert reopened.rate(Feedback("old", "acme", "k1", "up"), queue_down=True) is None
    assert reopened.rate(Feedback("rated", "acme", "k1", "up"), queue_down=True) is not None
    assert reopened.rate(Feedback("r1", "acme", "k1", "up"), queue_down=True) is not None
    assert [i.record.request_id for i in reopened.queue()] == ["r2"]
