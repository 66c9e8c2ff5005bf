"""The RAG service and its HTTP API without Ray: real retrieval, fast stand-in models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deployments.ingress import create_app
from deployments.protocols import GenerationDelta, QueryEmbedding, Readiness, SearchOutcome
from deployments.rag_service import RAGService
from deployments.retriever import IndexManager
from tests.unit.fakes import HashEmbedder, ScriptedGenerator, publish_tiny_index
from utils.settings import ServiceSettings


class ManagerRetriever:
    """`Retriever` over a real IndexManager, in process."""

    def __init__(self, manager: IndexManager) -> None:
        self.manager = manager

    async def search(self, query: str, embedding: QueryEmbedding, k: int) -> SearchOutcome:
        return self.manager.search(query, embedding, k)

    async def readiness(self) -> Readiness:
        return self.manager.readiness()


def make_client(index_dir: Path, generator: ScriptedGenerator | None, **overrides: object):
    settings = ServiceSettings(index_dir=index_dir, **overrides)  # type: ignore[arg-type]
    manager = IndexManager(settings)
    manager.refresh()
    service = RAGService(HashEmbedder(), ManagerRetriever(manager), generator, settings)
    app = create_app(lambda: service, settings.max_body_bytes)
    return TestClient(app, raise_server_exceptions=False), manager


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
        ("post", {"json": {"query": "   "}}, "query"),
        ("post", {"json": {"question": "x", "top_k": 5, "extra": 1}}, "query"),
        ("post", {"content": b"{not json", "headers": {"content-type": "application/json"}}, ""),
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
    assert body["tokens_used"] == {"prompt": 100, "completion": 7, "total": 107}
    assert len(body["sources"]) == 2 and body["request_id"]
    system, user = generator.last_messages
    assert system["role"] == "system" and "only" in system["content"]
    assert "<context>" not in system["content"]
    assert "[1] (source: docs/" in user["content"] and "<question>" in user["content"]


def test_generator_failure_degrades_to_sources(index_dir: Path) -> None:
    client, _ = make_client(index_dir, ScriptedGenerator(fail=True))
    response = client.post("/ask", json={"question": "batching"})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "degraded"
    assert body["sources"] and body["answer"] == "" and "unavailable" in body["message"]


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


async def _first_token_then_close(service: RAGService) -> None:
    events = service.ask_stream("batching", 2, None, "rid")
    name, _ = await anext(events)
    assert name == "token"
    await events.aclose()  # what the SSE response does when the client goes away


def test_closing_the_stream_early_closes_the_generation(index_dir: Path) -> None:
    import asyncio

    class SlowWords(ScriptedGenerator):
        async def stream(self, messages, max_tokens):  # type: ignore[no-untyped-def]
            try:
                for i in range(1000):
                    yield GenerationDelta(f"w{i} ")
            finally:
                self.closed = True

    generator = SlowWords()
    settings = ServiceSettings(index_dir=index_dir)
    manager = IndexManager(settings)
    manager.refresh()
    service = RAGService(HashEmbedder(), ManagerRetriever(manager), generator, settings)
    asyncio.run(_first_token_then_close(service))
    assert generator.closed


def test_openai_route_without_an_engine_is_503(index_dir: Path) -> None:
    client, _ = make_client(index_dir, None)
    response = client.post("/v1/chat/completions", json={"messages": []})
    assert response.status_code == 503 and "disabled" in response.json()["message"]
