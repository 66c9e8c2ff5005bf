"""Variants, the answer cache and fallbacks on the real app: real Ray, Serve deployed from a
config (the `serve deploy` path) with two Ingress replicas, the embedded store's actors, the
real embedder and FAISS, vLLM on SmolLM2, keys from the real manage_keys.py CLI."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from deployments.feedback_store import actor_name, ledger_path
from deployments.launch import create_key, deploy
from ragcore.variants.routing import sticky_point
from ragcore.variants.shadow import read_log
from tests.helpers import (
    all_ready,
    background_load,
    build_collections,
    free_port,
    kill_engine_process,
    stop_serve,
    wait_for,
)
from utils.paths import PROJECT_ROOT
from utils.settings import BuildSettings, ServiceSettings

pytestmark = [pytest.mark.integration, pytest.mark.vllm]
QUESTION = "What happens to /ask when the generator fails?"
VARIANTS: dict[str, Any] = {
    "items": [
        {"name": "main", "weight": 80},
        # A fault-injection canary: every generation fails, so it must be rolled back.
        {"name": "beta", "weight": 20, "role": "canary", "fault": {"error_rate": 1.0}},
    ],
    "canary": {"min_requests": 6, "window_s": 300},
}


@dataclass
class Variants:
    url: str
    config: dict[str, Any]
    work: Path
    acme: dict[str, str]  # search + ask
    tester: dict[str, str]  # + the test scope, both collections
    globex: dict[str, str]  # another tenant, + test scope
    admin: dict[str, str]


def _app_config(work: Path, port: int, user_config: dict[str, Any]) -> dict[str, Any]:
    args = {"index_dir": str(work / "docs"),
            "collections": {"extra": {"index_dir": str(work / "extra")}},
            "auth": {"state_dir": str(work / "state"), "key_cache_s": 1},
            "generator": {"max_tokens": 32, "timeout_s": 300},
            "ingress": {"num_replicas": 2, "ray_actor_options": {"num_cpus": 1}},
            "variants": VARIANTS}  # fmt: skip
    ingress = {"name": "Ingress", "user_config": user_config}
    app = {"name": "rag", "route_prefix": "/", "import_path": "deployments.app:build_app",
           "args": args, "deployments": [ingress]}  # fmt: skip
    return {"http_options": {"host": "127.0.0.1", "port": port}, "applications": [app]}


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory, ray_session: int) -> Iterator[Variants]:
    work = tmp_path_factory.mktemp("variants")
    build_collections(work, ("docs", "extra"), pages=3)
    port = free_port()
    config = _app_config(work, port, {})
    (work / "serve.yaml").write_text(yaml.safe_dump(config))
    deploy(config)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: all_ready(url, calls=6), 900, "the app ready", every=2.0)

    def key(tenant: str, scopes: str) -> dict[str, str]:
        # The split and load tests send thousands of requests a minute.
        secret = create_key(tenant, ["--scopes", scopes, "--collections", "docs,extra"],
                            ["--rpm", "100000", "--tokens-per-minute", "10000000"],
                            config=work / "serve.yaml")  # fmt: skip
        return {"Authorization": f"Bearer {secret}"}

    try:
        yield Variants(url, config, work, key("acme", "search,ask"),
                       key("qa", "search,ask,test"), key("globex", "search,ask,test"),
                       key("ops", "admin"))  # fmt: skip
    finally:
        stop_serve()


def _ask(v: Variants, headers: dict[str, str], question: str = QUESTION,
         **body: Any) -> dict[str, Any]:  # fmt: skip
    r = httpx.post(f"{v.url}/ask", json={"question": question, **body}, headers=headers,
                   timeout=300)  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.headers["x-variant"] == r.json()["variant"]
    return dict(r.json())


def _main_user(tenant: str) -> str:
    """A user id that the 80/20 split sends to `main` (the first 80% band)."""
    return next(f"u{i}" for i in range(100) if sticky_point(f"{tenant}\x00u{i}") < 0.8)


def test_an_80_20_split_over_500_requests_is_sticky_per_user(variants: Variants) -> None:
    with httpx.Client(timeout=60) as client:

        def variant_of(user: str) -> str:
            r = client.get(f"{variants.url}/search", params={"query": "autoscaling"},
                           headers={**variants.acme, "X-User-ID": user})  # fmt: skip
            assert r.status_code == 200 and r.json()["variant"] == r.headers["x-variant"]
            return r.headers["x-variant"]

        first = {f"user-{i}": variant_of(f"user-{i}") for i in range(500)}
        again = {user: variant_of(user) for user in list(first)[:100]}
    counts = Counter(first.values())
    # 500 draws at p = 0.8: sd 8.9, so 4 sd either side of 400.
    assert 364 <= counts["main@1"] <= 436 and counts["main@1"] + counts["beta@1"] == 500
    assert all(first[user] == variant for user, variant in again.items())


def test_choosing_a_variant_needs_the_test_scope(variants: Variants) -> None:
    forced = {"X-Variant": "beta"}
    r = httpx.get(f"{variants.url}/search", params={"query": "x"},
                  headers={**variants.acme, **forced}, timeout=30)  # fmt: skip
    assert r.status_code == 403 and "test scope" in r.json()["message"]
    r = httpx.get(f"{variants.url}/search", params={"query": "x"},
                  headers={**variants.tester, **forced}, timeout=30)  # fmt: skip
    assert r.status_code == 200 and r.headers["x-variant"] == "beta@1"
    r = httpx.get(f"{variants.url}/search", params={"query": "x"},
                  headers={**variants.tester, "X-Variant": "nope"}, timeout=30)  # fmt: skip
    assert r.status_code == 422 and "known: main, beta" in r.json()["message"]


def test_exact_and_semantic_hits_a_refused_near_miss_and_no_sharing(variants: Variants) -> None:
    main = {**variants.tester, "X-Variant": "main"}
    first = _ask(variants, main)
    assert first["cache"] is None and first["answer_path"] == "generator"
    again = _ask(variants, main, QUESTION.lower().rstrip("?"))
    assert again["cache"] == "exact" and again["answer"] == first["answer"]
    assert again["tokens_used"]["total"] == 0 and again["tokens_saved"] > 0
    close = _ask(variants, main, "What happens to /ask if the generator fails?")
    assert close["cache"] == "semantic" and close["answer"] == first["answer"]
    # Close in embedding space but another question: never the cached answer.
    near = _ask(variants, main, "What happens to /ask when the generator does not fail?")
    assert near["cache"] is None
    other_tenant = _ask(variants, {**variants.globex, "X-Variant": "main"})
    assert other_tenant["cache"] is None
    other_collection = _ask(variants, main, collection="extra")
    assert other_collection["cache"] is None
    other_variant = _ask(variants, {**variants.tester, "X-Variant": "beta"})
    assert other_variant["cache"] is None


def test_a_faulty_canary_is_rolled_back_on_every_replica(variants: Variants) -> None:
    failed_before = 0
    state: dict[str, Any] = {}
    for i in range(400):
        body = _ask(variants, {**variants.acme, "X-User-ID": f"canary-{i}"})
        failed_before += body["variant"] == "beta@1"
        if body["variant"] == "beta@1":
            assert body["answer_path"] == "fallback_extractive" and body["status"] == "degraded"
        state = httpx.get(f"{variants.url}/admin/variants", headers=variants.admin,
                          timeout=30).json()  # fmt: skip
        if any(s["rolled_back"] for s in state["variants"]):
            break
    beta = next(s for s in state["variants"] if s["name"] == "beta")
    assert beta["rolled_back"] == "error_rate" and beta["share"] == 0
    assert failed_before >= VARIANTS["canary"]["min_requests"]

    # Every replica routes the canary's users to main now (the rollback is shared).
    def routed() -> set[str]:
        return {_ask(variants, {**variants.acme, "X-User-ID": f"canary-{i}"})["variant"]
                for i in range(40)}  # fmt: skip

    wait_for(lambda: routed() == {"main@1"}, 60, "the rollback on every replica")


def test_an_index_swap_invalidates_the_cache(variants: Variants) -> None:
    from pipelines.build import run_build

    main = {**variants.tester, "X-Variant": "main"}
    assert _ask(variants, main)["cache"] == "exact"
    old = httpx.get(f"{variants.url}/readyz", timeout=10).json()["index_version"]
    corpus = variants.work / "docs-pages"
    (corpus / "flamingos.md").write_text("# Flamingos\n\nFlamingos migrate to the Altiplano.")
    run_build(BuildSettings(sources=[str(corpus)], index_dir=variants.work / "docs"))
    wait_for(lambda: all(httpx.get(f"{variants.url}/readyz", timeout=10).json()
                         .get("index_version") != old for _ in range(6)), 120,
             "the new version on both replicas")  # fmt: skip
    after = _ask(variants, main)
    assert after["cache"] is None and after["answer_path"] == "generator"


def test_new_weights_apply_under_load_without_a_dropped_request(variants: Variants) -> None:
    def send(client: httpx.Client, caller: str) -> httpx.Response:
        return client.get(f"{variants.url}/search", params={"query": "replicas"},
                          headers={**variants.acme, "X-User-ID": caller})  # fmt: skip

    with background_load(send) as responses:
        wait_for(lambda: len(responses) > 50, 60, "load before the change")
        items = [{"name": "main", "weight": 50}, {"name": "gamma", "weight": 50}]
        config = _app_config(variants.work, int(variants.url.rsplit(":", 1)[1]),
                             {"variants": {"items": items}})  # fmt: skip
        deploy(config)
        wait_for(lambda: len(responses) > 200 and "gamma@1" in _variants(responses[-50:]), 120,
                 "the new split")  # fmt: skip
        count = len(responses)
        wait_for(lambda: len(responses) > count + 200, 120, "load on the new split")
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200}, Counter(statuses)
    last = Counter(_variants(responses[-200:]))
    assert set(last) == {"main@1", "gamma@1"} and 60 <= last["gamma@1"] <= 140, last


def _variants(responses: list[httpx.Response]) -> list[str]:
    return [r.headers.get("x-variant", "") for r in responses]


def test_a_shadow_variant_is_compared_and_never_shown(variants: Variants) -> None:
    items = [
        {"name": "main", "weight": 100},
        {"name": "next", "role": "shadow", "shadow_sample": 1.0, "retrieval": {"top_k": 2}},
    ]
    port = int(variants.url.rsplit(":", 1)[1])
    deploy(_app_config(variants.work, port, {"variants": {"items": items}}))

    def names() -> set[str]:
        state = httpx.get(f"{variants.url}/admin/variants", headers=variants.admin, timeout=30)
        return {v["name"] for v in state.json()["variants"]}

    wait_for(lambda: all("next" in names() for _ in range(6)), 120, "the shadow on both replicas")
    log = variants.work / "state" / "shadow.jsonl"

    def lines() -> dict[str, dict[str, Any]]:
        return {line["request_id"]: line for line in read_log(log)}

    # Copies use idle time only (a live request cancels them): one request at a time.
    body = _ask(variants, variants.acme, "How does Serve scale the number of replicas?")
    assert body["variant"] == "main@1"  # users never see the shadow
    wait_for(lambda: body["request_id"] in lines(), 300, "the /ask comparison in the log")
    found = httpx.get(f"{variants.url}/search", params={"query": "replicas"},
                      headers=variants.acme, timeout=30)  # fmt: skip
    assert found.headers["x-variant"] == "main@1"
    ids = (body["request_id"], found.json()["request_id"])
    wait_for(lambda: ids[1] in lines(), 60, "the /search comparison in the log")
    answer, search = (lines()[i] for i in ids)
    assert answer["shadow_variant"] == "next@1" and answer["live_answer"] == body["answer"]
    assert answer["k"] == len(body["sources"]) and 0 <= answer["overlap_at_k"] <= 1
    assert answer["answer_similarity"] is not None and answer["shadow_ms"] > 0
    assert search["route"] == "search" and search["answer_similarity"] is None
    deploy(_app_config(variants.work, port, {"variants": VARIANTS}))


def test_a_killed_generator_falls_back_to_the_sources(variants: Variants) -> None:
    kill_engine_process()  # the generator's compute dies: its requests fail
    body = _ask(variants, {**variants.tester, "X-Variant": "main"},
                "How do I pin an index version with user_config?")  # fmt: skip
    assert body["answer_path"] == "fallback_extractive" and body["status"] == "degraded"
    assert body["answer_mode"] == "extractive" and body["sources"]


def test_feedback_and_the_review_queue_survive_a_restart(variants: Variants) -> None:
    import ray

    body = _ask(variants, variants.acme, "How do I set the number of replicas?")
    rating = {"request_id": body["request_id"], "rating": "down", "comment": "wrong page"}
    r = httpx.post(f"{variants.url}/feedback", json=rating, headers=variants.acme, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["variant"] == body["variant"] and r.json()["queued_for_review"] is True
    stranger = httpx.post(f"{variants.url}/feedback", json=rating, headers=variants.globex,
                          timeout=30)  # fmt: skip
    assert stranger.status_code == 404  # another tenant's request id is unknown to globex

    # A restart: the app goes, and so does the ledger's actor (as when the head restarts).
    stop_serve()
    ledger = ledger_path(ServiceSettings.model_validate(variants.config["applications"][0]["args"]))
    ray.kill(ray.get_actor(actor_name(ledger), namespace="rag"), no_restart=True)
    deploy(variants.config)
    wait_for(lambda: all_ready(variants.url, calls=6), 900, "the app ready again", every=2.0)

    # Earlier tests queued many answers (short ones fail validation): ask for this one.
    mine = {"request_id": body["request_id"]}

    def review() -> httpx.Response:
        return httpx.get(f"{variants.url}/admin/review", params=mine, headers=variants.admin,
                         timeout=30)  # fmt: skip

    # The ledger's new actor starts on the first call; until it answers, the route says 503
    # (retryable, documented), so wait for the queue to answer before reading it.
    queue = wait_for(lambda: (r := review()).status_code == 200 and r, 300,
                     "the review queue answering after the restart", every=1.0).json()  # fmt: skip
    (item,) = queue["items"]
    assert "thumbs_down" in item["reasons"] and item["comment"] == "wrong page"
    assert item["question"] == "How do I set the number of replicas?" and item["sources"]
    counts = httpx.get(f"{variants.url}/admin/feedback", headers=variants.admin, timeout=30)
    assert counts.json()["variants"][body["variant"]]["down"] >= 1
    again = httpx.post(f"{variants.url}/feedback", json={**rating, "rating": "up"},
                       headers=variants.acme, timeout=30)  # fmt: skip
    assert again.status_code == 200  # the answer's record survived too
    cli = subprocess.run([sys.executable, "manage_review.py", "--config",
                          str(variants.work / "serve.yaml"), "mark", body["request_id"],
                          "--tenant", "acme", "--note", "checked"], cwd=PROJECT_ROOT,
                         capture_output=True, text=True)  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    pending = httpx.get(f"{variants.url}/admin/review", params=mine, headers=variants.admin,
                        timeout=30)  # fmt: skip
    assert pending.json()["items"] == []  # reviewed: no longer pending
