"""POST /feedback and the review queue over HTTP (in process, scripted generator)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from deployments.api import create_app
from tests.helpers import ScriptedGenerator, make_service, publish_tiny_index


def _client(tmp_path: Path, **overrides: object) -> TestClient:
    publish_tiny_index(tmp_path)
    service, _ = make_service(tmp_path, ScriptedGenerator("Batch with serve.batch [1]."),
                              feedback=True, **overrides)  # fmt: skip
    return TestClient(create_app(service), raise_server_exceptions=False)


def test_a_thumbs_down_is_stored_for_the_variant_and_queued_for_review(tmp_path: Path) -> None:
    client = _client(tmp_path)
    asked = client.post("/ask", json={"question": "How do I batch requests?"},
                        headers={"X-Request-ID": "req-1"})  # fmt: skip
    assert asked.status_code == 200 and asked.json()["request_id"] == "req-1"
    up = client.post("/feedback", json={"request_id": "req-1", "rating": "up"})
    assert up.status_code == 200, up.text
    assert up.json() == {"request_id": "req-1", "rating": "up", "variant": "main@1",
                         "queued_for_review": False}  # fmt: skip
    down = client.post("/feedback", json={"request_id": "req-1", "rating": "down",
                                          "comment": "it cites the wrong page"})  # fmt: skip
    assert down.json()["queued_for_review"] is True
    (item,) = client.get("/admin/review").json()["items"]
    assert item["request_id"] == "req-1" and item["reasons"] == ["thumbs_down"]
    assert item["question"] == "How do I batch requests?" and "serve.batch" in item["answer"]
    assert item["sources"] and item["rating"] == "down"
    assert item["comment"] == "it cites the wrong page"
    counts = client.get("/admin/feedback").json()
    assert counts == {"variants": {"main@1": {"up": 0, "down": 1}}}
    marked = client.post("/admin/review/req-1", json={"note": "re-indexed the page"})
    assert marked.json()["items"][0]["note"] == "re-indexed the page"
    assert client.get("/admin/review").json()["items"] == []
    reviewed = client.get("/admin/review", params={"status": "all", "request_id": "req-1"})
    assert [i["reviewer"] for i in reviewed.json()["items"]] == ["anonymous"]
    assert len(client.get("/admin/review", params={"status": "reviewed"}).json()["items"]) == 1


def test_a_refused_answer_is_queued_and_bad_feedback_gets_clear_errors(tmp_path: Path) -> None:
    client = _client(tmp_path, answers={"min_relevance": 1.0})  # nothing is relevant: refused
    asked = client.post("/ask", json={"question": "What is the capital of France?"},
                        headers={"X-Request-ID": "req-2"})  # fmt: skip
    assert asked.json()["answer_mode"] == "refused"
    (item,) = client.get("/admin/review").json()["items"]
    assert item["reasons"] == ["refused"] and item["answer_mode"] == "refused"
    unknown = client.post("/feedback", json={"request_id": "nope", "rating": "up"})
    assert unknown.status_code == 404 and "no answer with request_id 'nope'" in unknown.text
    bad = client.post("/feedback", json={"request_id": "req-2", "rating": "meh"})
    assert bad.status_code == 422 and "rating" in bad.text
    assert client.post("/admin/review/nope", json={}).status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert {"200", "404", "422"} <= set(paths["/feedback"]["post"]["responses"])


def test_without_a_desk_feedback_is_a_clear_404(tmp_path: Path) -> None:
    publish_tiny_index(tmp_path)
    service, _ = make_service(tmp_path, ScriptedGenerator())
    client = TestClient(create_app(service), raise_server_exceptions=False)
    response = client.post("/feedback", json={"request_id": "r", "rating": "up"})
    assert response.status_code == 404 and "feedback is disabled" in response.text
