"""API keys, scopes, collections, limits and usage through the HTTP API, without Ray: the
embedded store's actor class runs in-process (tests.helpers.tenant_gate)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deployments.api import create_app
from ragcore.tenancy.keys import Limits
from tests.helpers import (
    ScriptedGenerator,
    add_key,
    make_service,
    publish_tiny_index,
    tenant_gate,
    wait_for,
)

QUESTION = {"question": "How do I batch requests?", "top_k": 2}


class Env:
    """A served tiny index with the tenant gate, its state dir and the in-process actor."""

    def __init__(self, root: Path, **auth: Any) -> None:
        self.state = root / "state"
        publish_tiny_index(root / "docs")
        publish_tiny_index(root / "extra")
        service, _ = make_service(root / "docs", ScriptedGenerator(),
                                  collections={"extra": {"index_dir": root / "extra"}})  # fmt: skip
        from ragcore.index_manager import IndexManager
        from ragcore.search import SearchEngine
        from tests.helpers import HashEmbedder

        extra = IndexManager(service.settings.for_collection("extra"))
        extra.refresh()
        service.collections["extra"] = SearchEngine(HashEmbedder(), extra, 8, 5.0)
        service.count_tokens = lambda messages: 100
        self.gate, self.actor = tenant_gate(self.state, **auth)
        self.client = TestClient(create_app(service, gate=self.gate),
                                 raise_server_exceptions=False)  # fmt: skip

    def key(self, tenant: str = "acme", **fields: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {add_key(self.state, tenant, **fields)}"}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    built = Env(tmp_path)
    with built.client:  # one event loop for the whole test: background settles run on it
        yield built


def test_health_routes_stay_open_and_the_rest_need_a_key(env: Env) -> None:
    assert env.client.get("/healthz").status_code == 200
    assert env.client.get("/readyz").status_code == 200
    routes = (("get", "/search?query=batching", None), ("post", "/ask", QUESTION),
              ("get", "/v1/models", None), ("get", "/v1/usage", None))  # fmt: skip
    for method, path, body in routes:
        response = env.client.request(method.upper(), path, json=body)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        assert "API key" in response.json()["message"]


def test_unknown_revoked_and_expired_keys_get_the_same_401(env: Env) -> None:
    import time

    revoked = env.key(revoked_at=time.time() - 1)
    expired = env.key(expires_at=time.time() - 1)
    bodies = []
    for headers in ({"Authorization": "Bearer rk-not-a-key"}, revoked, expired,
                    {"Authorization": "Basic abc"}, {"X-API-Key": ""}):  # fmt: skip
        response = env.client.get("/search", params={"query": "batching"}, headers=headers)
        assert response.status_code == 401
        bodies.append(response.json()["message"])
    assert len(set(bodies)) == 1  # never says whether a key exists


def test_bearer_and_x_api_key_both_work(env: Env) -> None:
    bearer = env.key()
    secret = bearer["Authorization"].split()[1]
    for headers in (bearer, {"X-API-Key": secret}):
        response = env.client.get("/search", params={"query": "batching"}, headers=headers)
        assert response.status_code == 200, response.text


def test_a_key_without_the_scope_gets_403(env: Env) -> None:
    headers = env.key(scopes=("search",))
    searched = env.client.get("/search", params={"query": "batching"}, headers=headers)
    assert searched.status_code == 200
    response = env.client.post("/ask", json=QUESTION, headers=headers)
    assert response.status_code == 403 and "'ask' scope" in response.json()["message"]


def test_collections_outside_the_key_are_forbidden_and_its_own_are_served(env: Env) -> None:
    docs_only = env.key(collections=("docs",))
    extra_only = env.key("beta", collections=("extra",))
    for collection in ("extra", "does-not-exist"):  # the same 403: existence is not revealed
        response = env.client.get("/search", params={"query": "batching", "collection": collection},
                                  headers=docs_only)  # fmt: skip
        assert response.status_code == 403, response.text
    asked = env.client.post("/ask", json={**QUESTION, "collection": "docs"}, headers=extra_only)
    assert asked.status_code == 403
    own = env.client.get("/search", params={"query": "batching"}, headers=extra_only)
    assert own.status_code == 200 and own.json()["results"]


def test_requests_per_minute_429_with_true_headers(env: Env) -> None:
    headers = env.key(limits=Limits(rpm=2))
    first = env.client.get("/search", params={"query": "batching"}, headers=headers)
    second = env.client.get("/search", params={"query": "batching"}, headers=headers)
    third = env.client.get("/search", params={"query": "batching"}, headers=headers)
    assert [r.status_code for r in (first, second, third)] == [200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in (first, second, third)] == ["1", "0", "0"]
    assert all(r.headers["x-ratelimit-limit"] == "2" for r in (first, second, third))
    retry = int(third.headers["retry-after"])
    assert 58 <= retry <= 60 and int(third.headers["x-ratelimit-reset"]) == retry
    assert "requests per minute" in third.json()["message"]


def test_token_budgets_refuse_with_429_or_422_when_a_request_can_never_fit(env: Env) -> None:
    # The counted prompt is 100 tokens; max_tokens 50: each /ask reserves 150.
    headers = env.key(limits=Limits(tokens_per_day=400))
    body = {**QUESTION, "max_tokens": 50}
    codes = [env.client.post("/ask", json=body, headers=headers).status_code for _ in range(3)]
    # Each answer settles to the engine's 107 tokens: 107 + 107 + 150 <= 400, then no room.
    assert codes == [200, 200, 200]
    wait_for(lambda: not env.gate._tasks, 10, "settles")
    refused = env.client.post("/ask", json=body, headers=headers)
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-resource"] == "tokens_per_day"
    too_big = env.client.post("/ask", json={**QUESTION, "max_tokens": 1000}, headers=headers)
    assert too_big.status_code == 422
    assert "tokens per day limit is 400" in too_big.json()["message"]


def test_usage_shows_a_tenant_its_own_and_admins_anyone(env: Env) -> None:
    acme, other, admin = env.key(), env.key("globex"), env.key("ops", scopes=("usage", "admin"))
    assert env.client.post("/ask", json=QUESTION, headers=acme).status_code == 200
    assert env.client.get("/search", params={"query": "x"}, headers=acme).status_code == 200
    asyncio.run(env.gate.flush())
    mine = env.client.get("/v1/usage", headers=acme).json()
    routes = {d["route"]: d for d in mine["days"]}
    assert mine["tenant"] == "acme" and routes["/ask"]["completion_tokens"] == 7
    assert routes["/search"]["requests"] == 1 and mine["prompt_tokens"] == 100
    assert mine["limits"]["tenant:acme"]["rpm"] == 600  # the default tenant limits
    peek = env.client.get("/v1/usage", params={"tenant": "acme"}, headers=other)
    assert peek.status_code == 403
    assert env.client.get("/v1/usage", params={"tenant": "acme"}, headers=admin).json()[
        "requests"] >= 2  # fmt: skip


def test_store_down_fails_closed_with_503(env: Env) -> None:
    headers = env.key()
    env.actor.down = True
    response = env.client.get("/search", params={"query": "batching"}, headers=headers)
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "tenant store is unavailable" in response.json()["message"]


def test_store_down_fails_open_when_configured(tmp_path: Path) -> None:
    env = Env(tmp_path, on_store_failure="open", key_cache_s=0)
    headers = env.key(limits=Limits(rpm=1))
    with env.client:
        assert env.client.get("/search", params={"query": "x"}, headers=headers).status_code == 200
        env.actor.down = True  # the key was seen: it is served from the stale cache, unlimited
        codes = {env.client.get("/search", params={"query": "x"}, headers=headers).status_code
                 for _ in range(3)}  # fmt: skip
        assert codes == {200}
        unseen = env.key("new")  # a key never seen cannot be checked: still refused
        assert env.client.get("/search", params={"query": "x"}, headers=unseen).status_code == 503


def test_a_key_with_headroom_is_admitted_beside_its_search_and_still_counted(env: Env) -> None:
    headers = env.key(limits=Limits(rpm=12))
    codes = [env.client.get("/search", params={"query": "batching"}, headers=headers)
             for _ in range(14)]  # fmt: skip
    # The first requests leave >= 8 in the window: later ones are checked beside the search,
    # and the limit is still exact.
    assert [r.status_code for r in codes] == [200] * 12 + [429] * 2
    assert [r.headers["x-ratelimit-remaining"] for r in codes[:12]] == [
        str(n) for n in range(11, -1, -1)
    ]
