"""The HTTP API without Ray: real retrieval and search engine, fast stand-in models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deployments.api import create_app
from tests.helpers import ScriptedGenerator, make_service, publish_tiny_index
from utils.errors import OverloadedError, UnavailableError


def make_client(index_dir: Path, generator: ScriptedGenerator | None, **overrides: object):
    service, manager = make_service(index_dir, generator, **overrides)
    return TestClient(create_app(service), raise_server_exceptions=False), manager


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    publish_tiny_index(tmp_path)
    return tmp_path


def test_search_get_and_post_follow_the_contract(index_dir: Path) -> None:
    client, _ = make_client(index_dir, ScriptedGenerator())
    got = client.get("/search", params={"query": "autoscaling replicas", "k": 2},
                     headers={"X-Request-ID": "req-42"})  # fmt: skip
    assert got.status_code == 200 and got.headers["x-request-id"] == "req-42"
    body = got.json()
    assert body["status"] == "ok" and len(body["results"]) == 2
    assert body["results"][0]["source"] == "docs/autoscaling.md#autoscaling"
    assert set(body["results"][0]) >= {"content", "source", "score"}
    posted = client.post("/search", json={"query": "autoscaling replicas", "k": 2}).json()
    assert posted["results"] == body["results"]


@pytest.mark.parametrize(
    ("method", "kwargs", "field"),
    [
        ("get", {"params": {"query": ""}}, "query"),
        ("get", {"params": {"query": "x" * 10_000}}, "query"),
        ("get", {"params": {"query": "ok", "k": 0}}, "k"),
        ("get", {"params": {"query": "ok", "k": 51}}, "k"),
        ("get", {"params": {"query": "\n", "k": 27}}, "query"),  # found by schemathesis
        ("get", {"params": {"query": "ok", "k": "many"}}, "k"),
        ("post", {"json": {"query": "   "}}, "query"),
        ("post", {"json": {"question": "x", "top_k": 5, "extra": 1}}, "query"),
        ("post", {"json": ["query"]}, "body"),
    ],
)
def test_bad_input_is_422_with_field_messages(
    index_dir: Path, method: str, kwargs: dict, field: str
) -> None:
    client, _ = make_client(index_dir, ScriptedGenerator())
    response = getattr(client, method)("/search", **kwargs)
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == "error" and body["message"].startswith("invalid request")
    assert field in body["message"] and "Traceback" not in response.text


def test_oversized_body_is_413(index_dir: Path) -> None:
    client, _ = make_client(index_dir, ScriptedGenerator(), max_body_bytes=2048)
    response = client.post("/ask", content=b'{"question": "' + b"a" * 5000 + b'"}',
                           headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == 413 and "body" in response.json()["message"]


def test_ask_answers_with_sources_usage_and_a_grounded_prompt(index_dir: Path) -> None:
    generator = ScriptedGenerator()
    client, _ = make_client(index_dir, generator)
    body = client.post("/ask", json={"question": "How do I batch requests?", "top_k": 2}).json()
    assert body["status"] == "ok" and body["answer"] == "Use autoscaling_config [1]."
    assert body["answer_mode"] == "generated" and body["prompt_version"] == "answer-v3"
    assert body["tokens_used"] == {"prompt": 100, "completion": 7, "total": 107}
    assert len(body["sources"]) == 2 and body["request_id"]
    assert [s["number"] for s in body["sources"]] == [1, 2]
    cited = body["sources"][0]
    expected = {"number": 1, "url": cited["source"], "title": cited["title"],
                "section": cited["section"], "score": cited["score"]}  # fmt: skip
    assert body["citations"] == [expected]
    assert body["validation"]["passed"] and body["validation"]["valid_citations"] == 1
    system, user = generator.last_messages
    assert system["role"] == "system" and "only" in system["content"]
    assert "Passage [1]" not in system["content"]
    assert "Passage [1]" in user["content"] and "Question:" in user["content"]


def test_prompt_version_and_decoding_are_per_request_within_limits(index_dir: Path) -> None:
    generator = ScriptedGenerator()
    client, _ = make_client(index_dir, generator)
    body = client.post("/ask", json={"question": "batching", "prompt_version": "answer-v1",
                                     "repetition_penalty": 1.25}).json()  # fmt: skip
    assert body["prompt_version"] == "answer-v1" and "(source: docs/" in str(
        generator.last_messages
    )
    assert generator.last_params and generator.last_params.repetition_penalty == 1.25
    unknown = client.post("/ask", json={"question": "batching", "prompt_version": "nope"})
    assert unknown.status_code == 422 and "answer-v2" in unknown.json()["message"]
    too_much = client.post("/ask", json={"question": "batching", "repetition_penalty": 1.9})
    assert too_much.status_code == 422 and "limit" in too_much.json()["message"]


def test_generator_failure_answers_extractively(index_dir: Path) -> None:
    client, _ = make_client(index_dir, ScriptedGenerator(fail=True))
    response = client.post("/ask", json={"question": "batching"})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "degraded"
    assert body["answer_mode"] == "extractive" and body["citations"] and body["sources"]
    assert "[1]" in body["answer"] and "unavailable" in body["message"]


def test_stream_sends_tokens_then_done_event(index_dir: Path) -> None:
    generator = ScriptedGenerator("Batch with serve.batch [1].")
    client, _ = make_client(index_dir, generator)
    with client.stream("POST", "/ask/stream", json={"question": "batching"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    names = [line.split(": ", 1)[1] for line in events if line.startswith("event:")]
    assert names[:2] == ["token", "token"] and names[-1] == "done"
    done = json.loads(events[-1].split(": ", 1)[1])
    assert done["tokens_used"]["completion"] == 7 and done["sources"]
    assert done["answer"] == "Batch with serve.batch [1]." and done["answer_mode"] == "generated"
    assert generator.closed


def test_no_index_is_503_with_reason_and_readyz_says_why(tmp_path: Path) -> None:
    client, manager = make_client(tmp_path, ScriptedGenerator())
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "no index published" in ready.json()["reason"]
    response = client.get("/search", params={"query": "x"})
    assert response.status_code == 503 and "build_index.py" in response.json()["message"]
    assert client.get("/healthz").status_code == 200
    publish_tiny_index(tmp_path)
    assert manager.refresh() is True
    assert client.get("/readyz").status_code == 200
    assert client.get("/search", params={"query": "handles"}).status_code == 200


def test_index_built_with_another_model_is_refused(tmp_path: Path) -> None:
    publish_tiny_index(tmp_path, model="sentence-transformers/all-mpnet-base-v2")
    client, _ = make_client(tmp_path, ScriptedGenerator())
    response = client.get("/search", params={"query": "x"})
    assert response.status_code == 503 and "all-mpnet-base-v2" in response.json()["message"]


def test_hot_swap_follows_current_and_user_config(index_dir: Path) -> None:
    client, manager = make_client(index_dir, ScriptedGenerator())
    first = manager.live.version  # type: ignore[union-attr]
    second = publish_tiny_index(index_dir)
    assert manager.refresh() and manager.live.version == second  # type: ignore[union-attr]
    manager.reconfigure({"index_version": first, "top_k": 1})
    assert manager.refresh() and manager.live.version == first  # type: ignore[union-attr]
    assert len(client.get("/search", params={"query": "handles", "k": 1}).json()["results"]) == 1


def test_openai_route_without_an_engine_is_503(index_dir: Path) -> None:
    client, _ = make_client(index_dir, None)
    response = client.post("/v1/chat/completions", json={"messages": [{"role": "user"}]})
    assert response.status_code == 503 and "disabled" in response.json()["message"]


def test_malformed_json_is_400_on_every_body_route(index_dir: Path) -> None:
    client, _ = make_client(index_dir, ScriptedGenerator())
    for route in ("/search", "/ask", "/ask/stream"):
        response = client.post(route, content=b"{not json",
                               headers={"content-type": "application/json"})  # fmt: skip
        assert response.status_code == 400, route
        assert "not valid JSON" in response.json()["message"]


def test_models_lists_the_served_model_openai_style(index_dir: Path) -> None:
    client, _ = make_client(index_dir, ScriptedGenerator())
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["smollm2-135m-instruct"]


def test_readyz_waits_for_the_generator_warm_up(index_dir: Path) -> None:
    import asyncio

    generator = ScriptedGenerator()
    service, _ = make_service(index_dir, generator, generator={"warmup_timeout_s": 30})
    client = TestClient(create_app(service))
    warming = client.get("/readyz")
    assert warming.status_code == 503 and "warming" in warming.json()["reason"]
    asyncio.run(service.warm_up())
    ready = client.get("/readyz").json()
    assert ready["ready"] is True and ready["generator"] == "ready"
    assert generator.last_messages, "the warm-up ran a real generation"


class _FailingGenerator(ScriptedGenerator):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def stream(self, messages, params):  # type: ignore[no-untyped-def]
        raise self.error
        yield  # pragma: no cover - makes this an async generator


def test_an_overloaded_generator_is_429_with_retry_after(index_dir: Path) -> None:
    client, _ = make_client(index_dir, _FailingGenerator(OverloadedError("busy", 3)))
    response = client.post("/ask", json={"question": "batching"})
    assert response.status_code == 429 and response.headers["retry-after"] == "3"
    assert "retry" in response.json()["message"]


def test_a_dead_part_is_503_with_a_reason(index_dir: Path) -> None:
    service, _ = make_service(index_dir, None)

    async def down(query: str, k: int, *args: object) -> object:
        raise UnavailableError("the embedder replica is restarting")

    service.searcher.search = down  # type: ignore[method-assign]
    client = TestClient(create_app(service), raise_server_exceptions=False)
    response = client.get("/search", params={"query": "x"})
    assert response.status_code == 503 and "restarting" in response.json()["message"]
    assert response.headers["retry-after"] == "1"


def test_openapi_documents_every_status_and_content_type(index_dir: Path) -> None:
    client, _ = make_client(index_dir, ScriptedGenerator())
    paths = client.get("/openapi.json").json()["paths"]
    for route, method in (("/search", "post"), ("/ask", "post"), ("/ask/stream", "post")):
        codes = set(paths[route][method]["responses"])
        assert {"200", "400", "413", "422", "429", "503", "504"} <= codes, route
    assert {"413", "422", "429", "503", "504"} <= set(paths["/search"]["get"]["responses"])
    stream = paths["/ask/stream"]["post"]["responses"]["200"]["content"]
    assert "text/event-stream" in stream
    assert "/v1/models" in paths
