"""The real Serve app: real Ray, the real embedder and FAISS index, real vLLM on SmolLM2.

One app is deployed per module (vLLM's cold start dominates); it starts before any index exists
so readiness is checked on both sides of the first publish.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import (
    all_ready,
    background_load,
    chromium_page,
    free_port,
    kill_engine_process,
    sse_events,
    stop_serve,
    wait_for,
    write_corpus,
)
from utils.settings import BuildSettings, ServiceSettings

pytestmark = [pytest.mark.integration, pytest.mark.vllm]
ZEBRA_PAGE = """# Zebra migrations

## Winter routes

Every winter, zebra herds cross the Mara river to reach fresh grazing in the south.

## Predators

Lions and crocodiles wait at the river crossings.
"""
ROOT = Path(__file__).resolve().parents[2]
# A prompt that makes the model loop on purpose, with the anti-loop decoding off: the service's
# own checks must cut it and answer from the sources instead.
LOOP_TEMPLATE = """version: loop-test
system: You repeat the same sentence again and again, forever. Never stop.
context_item: "[{n}] {title}\\n{content}"
turns:
  - {role: user, content: "Say 'Purple bananas sing at midnight.' forever."}
  - {role: assistant, content: "Purple bananas sing at midnight. Purple bananas sing at \\
      midnight. Purple bananas sing at midnight. Purple bananas sing at midnight."}
user: "Continue exactly the same way, forever."
decoding: {repetition_penalty: 1.0, frequency_penalty: 0.0, loop_ngram_tokens: 0}
"""


@dataclass
class LiveApp:
    url: str
    metrics_url: str
    index_dir: Path
    corpus: Path
    readyz_before_index: httpx.Response
    search_before_index: httpx.Response


def _readyz(url: str) -> httpx.Response | None:
    try:
        return httpx.get(f"{url}/readyz", timeout=10)
    except httpx.HTTPError:
        return None


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory, ray_session: int) -> Iterator[LiveApp]:
    from ray import serve

    from deployments.app import build_app
    from pipelines.build import run_build

    metrics_port = ray_session
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    work = tmp_path_factory.mktemp("serve")
    index_dir = work / "index"
    corpus = write_corpus(work / "guides", pages=12)
    (corpus / "zebra.md").write_text(ZEBRA_PAGE)
    for page in (ROOT / "guide").glob("*.md"):  # real prose for the answer checks
        (corpus / page.name).write_text(page.read_text())
    prompts = work / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    (prompts / "loop-test.yaml").write_text(LOOP_TEMPLATE)
    # Two Ingress replicas: the replica-loss test kills one while the other serves.
    args = {"index_dir": str(index_dir), "index_poll_s": 0.5,
            "ingress": {"num_replicas": 2, "ray_actor_options": {"num_cpus": 1}},
            "generator": {"max_tokens": 48, "timeout_s": 300},
            "answers": {"prompts_dir": str(prompts)},
            "auth": {"enabled": False}}  # tenants: test_tenants_serve.py  # fmt: skip
    serve.run(build_app(args), name="rag", route_prefix="/", blocking=False)
    url = f"http://127.0.0.1:{port}"
    before = wait_for(lambda: _readyz(url), 900, "the app to answer /readyz", every=1.0)
    search_before = httpx.get(f"{url}/search", params={"query": "autoscaling"}, timeout=30)
    run_build(BuildSettings(sources=[str(corpus)], index_dir=index_dir))
    wait_for(lambda: all_ready(url), 900, "every replica to be ready")
    yield LiveApp(url, f"http://127.0.0.1:{metrics_port}/metrics", index_dir, corpus, before,
                  search_before)  # fmt: skip
    stop_serve()


def test_readyz_before_and_after_the_index_exists(live_app: LiveApp) -> None:
    assert live_app.readyz_before_index.status_code == 503
    assert "no index published" in live_app.readyz_before_index.json()["reason"]
    assert live_app.search_before_index.status_code == 503
    assert "build_index.py" in live_app.search_before_index.json()["message"]
    ready = httpx.get(f"{live_app.url}/readyz", timeout=10).json()
    assert ready["ready"] is True and ready["index_version"] and ready["generator"] == "ready"


def test_search_returns_ranked_chunks_with_sources(live_app: LiveApp) -> None:
    response = httpx.get(f"{live_app.url}/search",
                         params={"query": "where do zebra herds go in winter", "k": 4},
                         headers={"X-Request-ID": "it-search-1"}, timeout=30)  # fmt: skip
    assert response.status_code == 200 and response.headers["x-request-id"] == "it-search-1"
    body = response.json()
    assert body["status"] == "ok" and len(body["results"]) == 4
    assert body["results"][0]["source"] == "guides/zebra.md#winter-routes"
    assert "Mara river" in body["results"][0]["content"]
    scores = [hit["score"] for hit in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_validation_errors_are_422(live_app: LiveApp) -> None:
    for params in ({"query": ""}, {"query": "x" * 10_000}, {"query": "x", "k": 51}):
        response = httpx.get(f"{live_app.url}/search", params=params, timeout=30)
        assert response.status_code == 422 and response.json()["status"] == "error"
    blank = httpx.get(f"{live_app.url}/search", params={"query": "\n", "k": 27}, timeout=30)
    assert blank.status_code == 422 and "whitespace" in blank.json()["message"]
    bad_json = httpx.post(f"{live_app.url}/ask", content=b"{oops",
                          headers={"content-type": "application/json"}, timeout=30)  # fmt: skip
    assert bad_json.status_code == 400 and "Traceback" not in bad_json.text


def test_ask_generates_with_real_vllm(live_app: LiveApp) -> None:
    response = httpx.post(f"{live_app.url}/ask",
                          json={"question": "What does guide 5 explain about batching?",
                                "top_k": 3}, timeout=300)  # fmt: skip
    body = response.json()
    assert response.status_code == 200 and body["status"] == "ok", body
    assert body["answer"].strip()
    assert len(body["sources"]) == 3 and all(s["source"].startswith("guides/")
                                             for s in body["sources"])  # fmt: skip
    usage = body["tokens_used"]
    assert usage["prompt"] > 50 and 0 < usage["completion"] <= 48
    assert usage["total"] == usage["prompt"] + usage["completion"]


def _sse_done(url: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The streamed text and the `done` event's data of one /ask/stream call."""
    events = sse_events(f"{url}/ask/stream", body)
    streamed = "".join(data["text"] for _, name, data in events if name == "token")
    done = [data for _, name, data in events if name == "done"]
    return streamed, done[-1] if done else {}


def _assert_cited_from_sources(body: dict[str, Any]) -> None:
    """Every [n] in the answer is a listed citation, every citation a retrieved source, and
    no URL in the text is outside the sources."""
    numbers = {int(n) for n in re.findall(r"\[(\d+)\]", body["answer"])}
    assert numbers and numbers == {c["number"] for c in body["citations"]}, body
    urls = {s["source"]: s for s in body["sources"]}
    assert all(c["url"] in urls and 1 <= c["number"] <= len(urls) for c in body["citations"])
    assert "http" not in body["answer"]


def test_ask_and_stream_return_validated_answers_with_real_sources(live_app: LiveApp) -> None:
    question = {"question": "How do I resume an interrupted index build?", "top_k": 3,
                "max_tokens": 160}  # fmt: skip
    whole = httpx.post(f"{live_app.url}/ask", json=question, timeout=300).json()
    _, streamed = _sse_done(live_app.url, question)
    for body in (whole, streamed):
        assert body["answer_mode"] in ("generated", "extractive"), body
        assert body["prompt_version"] == "answer-v3" and body["validation"] is not None
        if body["answer_mode"] == "generated":
            assert body["validation"]["passed"] and body["validation"]["groundedness"] >= 0.5
        _assert_cited_from_sources(body)
        assert any(s["source"].startswith("guides/build-job.md") for s in body["sources"])


def test_a_forced_loop_is_cut_and_answered_extractively(live_app: LiveApp) -> None:
    question = {"question": "How do I resume an interrupted index build?", "top_k": 3,
                "max_tokens": 200, "prompt_version": "loop-test"}  # fmt: skip
    streamed, done = _sse_done(live_app.url, question)
    assert done["answer_mode"] == "extractive", (streamed, done)
    assert done["stop_reason"] == "repetition", (streamed, done)
    assert not done["validation"]["passed"] and done["validation"]["reasons"]
    assert done["tokens_used"]["completion"] < 200  # cut, not run to max_tokens
    assert streamed.lower().count("purple bananas") <= 3
    _assert_cited_from_sources(done)
    whole = httpx.post(f"{live_app.url}/ask", json=question, timeout=300).json()
    assert whole["answer_mode"] == "extractive" and not whole["validation"]["passed"]
    assert "bananas" not in whole["answer"].lower()


def test_an_out_of_corpus_question_is_refused(live_app: LiveApp) -> None:
    body = httpx.post(f"{live_app.url}/ask", timeout=300,
                      json={"question": "How do I create a pivot table in Microsoft Excel?"}
                      ).json()  # fmt: skip
    assert body["answer_mode"] == "refused" and body["citations"] == [], body
    assert body["tokens_used"]["completion"] == 0 and body["sources"]


def test_stream_delivers_tokens_before_the_end(live_app: LiveApp) -> None:
    events = sse_events(f"{live_app.url}/ask/stream",
                        {"question": "Explain replicas in guide 2", "top_k": 2})  # fmt: skip
    tokens = [e for e in events if e[1] == "token"]
    done = [e for e in events if e[1] == "done"]
    assert len(tokens) > 3 and len(done) == 1 and events[-1][1] == "done"
    assert tokens[0][0] < done[0][0]  # the first token arrived before generation ended
    assert done[0][2]["tokens_used"]["completion"] > 0 and done[0][2]["status"] == "ok"


# Records the answer's length at every change, to see the tokens arrive one by one.
WATCH_ANSWER = """() => {
  window.answerLengths = [];
  const answer = document.getElementById("answer");
  new MutationObserver(() => window.answerLengths.push(answer.textContent.length))
    .observe(answer, {childList: true, characterData: true, subtree: true});
}"""
UNLABELLED = """() => [...document.querySelectorAll("input, textarea")]
  .filter((el) => el.labels.length === 0).map((el) => el.id || el.name)"""


def test_the_chat_page_streams_a_cited_answer_in_a_real_browser(live_app: LiveApp) -> None:
    """Headless Chromium on /ui: keyboard only, tokens appear as they stream, numbered
    citations open their source text, thumbs up is stored, search-only mode lists hits."""
    with chromium_page(width=360, height=740) as page:  # a phone-sized screen
        page.goto(f"{live_app.url}/ui")
        assert page.evaluate(UNLABELLED) == []  # every field has a label
        page.evaluate(WATCH_ANSWER)
        page.fill("#question", "What waits for zebras at the river crossings?")
        page.press("#question", "Enter")  # Enter sends
        page.wait_for_selector("#feedback:not([hidden])", timeout=300_000)
        final = page.inner_text("#answer")
        streamed = [n for n in page.evaluate("window.answerLengths") if n > 0]
        assert len(set(streamed)) >= 3, streamed  # it grew token by token, then the final
        assert page.is_visible("#error") is False
        citations = page.locator("#citations li")
        assert citations.count() >= 1 and final
        first, text = citations.nth(0).locator("button"), citations.nth(0).locator(".snippet")
        assert text.is_hidden()
        first.click()  # a file source has no web page: its cited text opens in place
        assert first.get_attribute("aria-expanded") == "true" and text.is_visible()
        assert "guides/" in text.inner_text()
        page.click("#feedback button[data-rating='up']")
        page.wait_for_selector("#feedback-done:has-text('Thanks')")
        wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert wide is False  # nothing overflows a narrow screen
        page.check("input[value='search']")
        page.fill("#question", "zebra winter routes")
        page.click("#submit")
        page.wait_for_selector("#hits li")
        assert "zebra" in page.inner_text("#hits").lower()
        if os.environ.get("RAG_UI_SCREENSHOT"):  # how docs/images/chat-page.png was made
            page.set_viewport_size({"width": 900, "height": 900})
            page.check("input[value='answer']")
            page.fill("#question", "What waits for zebras at the river crossings?")
            page.press("#question", "Enter")
            page.wait_for_selector("#feedback:not([hidden])", timeout=300_000)
            page.screenshot(path=os.environ["RAG_UI_SCREENSHOT"], full_page=True)


def test_the_chat_page_shows_errors_not_a_blank_screen(live_app: LiveApp) -> None:
    """The service down (the connection refused), 429 and 503, simulated in the browser."""
    faults = {
        "down": (lambda route: route.abort("connectionrefused"), "Cannot reach the service"),
        "429": (lambda route: route.fulfill(status=429, headers={"Retry-After": "7"},
                                            json={"status": "error", "message": "slow down"}),
                "try again in 7 s"),
        "503": (lambda route: route.fulfill(status=503, json={"status": "error",
                                                              "message": "engine restarting"}),
                "engine restarting"),
    }  # fmt: skip
    with chromium_page() as page:
        page.goto(f"{live_app.url}/ui")
        for handler, expected in faults.values():
            page.route("**/ask/stream", handler)
            page.fill("#question", "How do replicas scale?")
            page.click("#submit")
            page.wait_for_selector("#error:not([hidden])")
            assert expected in page.inner_text("#error")
            page.unroute("**/ask/stream")


def test_client_disconnect_mid_stream_leaves_service_healthy(live_app: LiveApp) -> None:
    with httpx.stream("POST", f"{live_app.url}/ask/stream",
                      json={"question": "Write a long essay about guide 1", "top_k": 2,
                            "max_tokens": 512}, timeout=300) as response:  # fmt: skip
        for line in response.iter_lines():
            if line.startswith("event: token"):
                break  # closing the connection here cancels the generation
    after = httpx.post(f"{live_app.url}/ask", json={"question": "guide 4?", "top_k": 1},
                       timeout=300)  # fmt: skip
    assert after.status_code == 200 and after.json()["status"] == "ok"


def test_hot_index_swap_under_concurrent_queries(live_app: LiveApp) -> None:
    from pipelines.build import run_build

    old = httpx.get(f"{live_app.url}/readyz", timeout=10).json()["index_version"]

    def send(client: httpx.Client, caller: str) -> httpx.Response:
        return client.get(f"{live_app.url}/search", params={"query": "tracing", "k": 3})

    with background_load(send) as responses:
        (live_app.corpus / "guide_new.md").write_text(
            "# Flamingos\n\nFlamingos migrate to the salt lakes of the Altiplano in Bolivia."
        )
        run_build(BuildSettings(sources=[str(live_app.corpus)], index_dir=live_app.index_dir))
        wait_for(lambda: httpx.get(f"{live_app.url}/readyz", timeout=10).json()
                 .get("index_version") != old, 120, "the new version")  # fmt: skip
        count = len(responses)
        wait_for(lambda: len(responses) > count + 20, 120, "queries on the new version")
    statuses = [r.status_code for r in responses]
    assert len(statuses) > 40 and set(statuses) == {200}
    hits = httpx.get(f"{live_app.url}/search", params={"query": "where do flamingos migrate"},
                     timeout=30).json()["results"]  # fmt: skip
    assert hits[0]["source"].startswith("guides/guide_new.md")


def test_generator_failure_degrades_ask(live_app: LiveApp) -> None:
    """A second ingress wired to an engine that fails: /ask degrades to sources, not a 500."""
    from ray import serve

    from deployments.app import build_app_from

    @serve.deployment(name="BrokenLLM")
    class BrokenLLM:
        async def chat(self, request: Any) -> Any:
            raise RuntimeError("engine crashed")
            yield  # pragma: no cover - makes this an (async) generator method

    settings = ServiceSettings(index_dir=live_app.index_dir, ingress={"num_replicas": 1},
                               auth={"enabled": False},
                               generator={"warmup_timeout_s": 3})  # fmt: skip
    app = build_app_from(settings, generator=BrokenLLM.bind())  # type: ignore[attr-defined]
    serve.run(app, name="broken", route_prefix="/broken", blocking=False)
    url = f"{live_app.url}/broken"
    wait_for(lambda: (r := _readyz(url)) is not None and r.status_code == 200, 300, "broken app")
    response = httpx.post(f"{url}/ask", json={"question": "batching in guide 6"}, timeout=120)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "degraded"
    assert body["answer_mode"] == "extractive" and re.search(r"\[\d\]", body["answer"])
    assert body["sources"] and "generator" in body["message"]
    assert httpx.get(f"{url}/readyz", timeout=10).json()["generator"].startswith("unavailable")
    serve.delete("broken")


def test_metrics_endpoint_exposes_custom_metrics(live_app: LiveApp) -> None:
    httpx.get(f"{live_app.url}/search", params={"query": "tracing"}, timeout=60)
    with httpx.stream(
        "POST", f"{live_app.url}/ask/stream", json={"question": "guide 7?", "top_k": 1}, timeout=300
    ) as response:
        list(response.iter_lines())  # fmt: skip
    wanted = ["ray_rag_stage_latency_ms", "ray_rag_requests", "ray_rag_prompt_tokens",
              "ray_rag_completion_tokens", "ray_rag_time_to_first_token_ms",
              "ray_rag_time_per_output_token_ms", "ray_rag_answers",
              "ray_rag_answer_groundedness"]  # fmt: skip
    missing: list[str] = list(wanted)

    def scrape() -> bool:
        try:
            text = httpx.get(live_app.metrics_url, timeout=10).text
        except httpx.HTTPError:
            return False
        missing[:] = [name for name in wanted if name not in text]
        return not missing

    try:
        wait_for(scrape, 180, "custom metrics on Ray's Prometheus endpoint", every=3.0)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; missing {missing}") from None
    text = httpx.get(live_app.metrics_url, timeout=10).text
    assert 'stage="embed"' in text and 'stage="generate"' in text


def test_openai_compatible_chat_completions(live_app: LiveApp) -> None:
    body = {"model": "smollm2-135m-instruct", "max_tokens": 8,
            "messages": [{"role": "user", "content": "Say hello."}]}  # fmt: skip
    response = httpx.post(f"{live_app.url}/v1/chat/completions", json=body, timeout=300)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["choices"][0]["message"]["content"] and data["usage"]["completion_tokens"] > 0
    with httpx.stream("POST", f"{live_app.url}/v1/chat/completions",
                      json={**body, "stream": True}, timeout=300) as streamed:  # fmt: skip
        lines = [line for line in streamed.iter_lines() if line.startswith("data:")]
    assert len(lines) > 1 and lines[-1] == "data: [DONE]"
    bad = httpx.post(f"{live_app.url}/v1/chat/completions", json={"messages": "x"}, timeout=60)
    assert bad.status_code == 422 and "Traceback" not in bad.text


@dataclass
class LoadResult:
    requests: int = 0
    succeeded: int = 0
    retried: int = 0
    failed_attempts: list[tuple[int, str]] = field(default_factory=list)
    slowest_s: float = 0.0


def _closed_loop(url: str, stop: threading.Event, result: LoadResult, attempts: int = 6) -> None:
    """One client: /search in a loop; a failed attempt is retried after a short back-off."""
    with httpx.Client(timeout=60) as client:
        while not stop.is_set():
            result.requests += 1
            start = time.monotonic()
            for attempt in range(attempts):
                try:
                    response = client.get(f"{url}/search", params={"query": "tracing", "k": 3})
                    status, text = response.status_code, response.text[:2000]
                except httpx.TransportError as exc:
                    status, text = 0, type(exc).__name__
                if status == 200:
                    result.succeeded += 1
                    result.retried += attempt > 0
                    result.slowest_s = max(result.slowest_s, time.monotonic() - start)
                    break
                result.failed_attempts.append((status, text))
                time.sleep(0.2 * (attempt + 1))


def _alive_replicas(deployment: str) -> set[str]:
    """Names of the live replica actors of one of our deployments (no dashboard needed)."""
    import ray

    prefix = f"SERVE_REPLICA::rag#{deployment}#"
    named = ray.util.list_named_actors(all_namespaces=True)
    return {a["name"] for a in named if a["name"].startswith(prefix)}


def _ask_status(url: str) -> str:
    question = "What does guide 3 explain about batching in Ray Serve?"  # relevant: not refused
    response = httpx.post(f"{url}/ask", json={"question": question, "top_k": 1, "max_tokens": 4},
                          timeout=300)  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["answer_mode"] != "refused", response.text
    return str(response.json()["status"])


def test_replica_loss_under_load_keeps_answering(live_app: LiveApp) -> None:
    """Closed-loop /search at concurrency 8 while an Ingress replica is killed, then the
    generator's engine process: >= 99.9% of requests succeed (retries count), every failed
    attempt is a quick 503 with a reason, and the controller restores each replica."""
    import ray

    result, stop = LoadResult(), threading.Event()
    clients = [threading.Thread(target=_closed_loop, args=(live_app.url, stop, result))
               for _ in range(8)]  # fmt: skip
    for client in clients:
        client.start()
    try:
        wait_for(lambda: result.succeeded > 50, 120, "load to run")
        before = _alive_replicas("Ingress")
        assert len(before) == 2
        victim = sorted(before)[0]
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        wait_for(lambda: len((now := _alive_replicas("Ingress")) - before) == 1 and len(now) == 2,
                 300, "the controller to replace the Ingress replica", every=1.0)  # fmt: skip
        kill_engine_process()
        # /ask degrades (200, sources only) while Serve replaces the engine, then answers again.
        wait_for(lambda: _ask_status(live_app.url) == "ok", 900, "the generator to come back",
                 every=3.0)  # fmt: skip
        count = result.requests
        wait_for(lambda: result.requests > count + 50, 120, "load after the kills")
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=120)
    share = result.succeeded / result.requests
    summary = (f"{result.succeeded}/{result.requests} succeeded, {result.retried} after a retry, "
               f"failed attempts: {Counter(s for s, _ in result.failed_attempts)}, slowest "
               f"request {result.slowest_s:.2f} s")  # fmt: skip
    print(summary)
    assert share >= 0.999, summary
    # A request that was running on the replica when it was killed is lost (Ray does not retry
    # those): Serve's proxy answers it a plain 500, or drops its connection. At most one per
    # client in flight. Every error the service itself returns is a 503 with a JSON reason.
    in_flight = {(500, "Internal Server Error"), (0, "RemoteProtocolError")}
    lost = [a for a in result.failed_attempts if a in in_flight]
    assert len(lost) <= len(clients), summary
    for status, text in result.failed_attempts:
        if (status, text) not in in_flight:
            assert status == 503 and json.loads(text)["message"], (status, text)
