"""Test helpers, in one place: fast in-process stand-ins (the integration tests run the real
parts), corpora, ports and condition waits."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

from pipelines.chunk import SectionChunker
from ragcore.cache.answer_cache import AnswerCache
from ragcore.cache.store import LocalCacheStore, MemoryCache
from ragcore.documents import Chunk, Page, Section
from ragcore.feedback.desk import FeedbackDesk, local_ledger
from ragcore.feedback.ledger import SqliteFeedback
from ragcore.index_format import publish
from ragcore.index_manager import IndexManager
from ragcore.metrics import NullMetrics
from ragcore.protocols import DecodingParams, Generation, GenerationDelta, Readiness
from ragcore.search import SearchEngine
from ragcore.service import RAGService
from ragcore.variants.experiments import Experiments
from utils.paths import PROJECT_ROOT
from utils.settings import BuildSettings, ChunkingSettings, ServiceSettings

DIM = 32
MODEL = "all-MiniLM-L6-v2"


def section_chunk(row: int, page: str, section: str, text: str, title: str = "Page") -> Chunk:
    """A chunk of section `section` on page `page`, with an id from its row."""
    return Chunk(f"id{row}", text, f"{page}#{section}", page, title, section)


def hash_vector(text: str) -> np.ndarray:
    """A deterministic unit vector from the words of `text` (bag of hashed words)."""
    vector = np.zeros(DIM, dtype=np.float32)
    for word in text.lower().split():
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % DIM] += 1.0
    norm = np.linalg.norm(vector)
    return vector / norm if norm else vector


class HashEmbedder:
    """`QueryEmbedder` with hashed bag-of-words vectors, claiming to be the index's model."""

    def __init__(self, model: str = MODEL) -> None:
        self.model_name = model

    async def embed_many(self, texts: list[str]) -> np.ndarray:
        return np.stack([hash_vector(t) for t in texts])


class RecordingMetrics(NullMetrics):
    """Metrics that keep the shadow and rerank outcomes, in order."""

    def __init__(self) -> None:
        self.shadows: list[tuple[str, str]] = []
        self.reranks: list[str] = []

    def shadow(self, variant: str, outcome: str) -> None:
        self.shadows.append((variant, outcome))

    def rerank(self, outcome: str) -> None:
        self.reranks.append(outcome)


class ScriptedGenerator:
    """`Generator` that answers with a fixed text, or fails, as the test asks."""

    def __init__(self, text: str = "Use autoscaling_config [1].", fail: bool = False) -> None:
        self.text = text
        self.fail = fail
        self.closed = False
        self.last_messages: list[dict[str, str]] = []
        self.last_params: DecodingParams | None = None
        self.calls = 0  # generations started

    async def generate(self, messages: list[dict[str, str]], params: DecodingParams) -> Generation:
        self.last_messages = messages
        self.last_params = params
        self.calls += 1
        if self.fail:
            raise ConnectionError("engine down")
        return Generation(self.text, prompt_tokens=100, completion_tokens=7)

    async def stream(
        self, messages: list[dict[str, str]], params: DecodingParams
    ) -> AsyncIterator[GenerationDelta]:
        self.last_messages = messages
        self.last_params = params
        self.calls += 1
        if self.fail:
            raise ConnectionError("engine down")
        try:
            for word in self.text.split(" "):
                yield GenerationDelta(word + " ")
            yield GenerationDelta("", prompt_tokens=100, completion_tokens=7)
        finally:
            self.closed = True

    async def readiness(self) -> Readiness:
        return Readiness(not self.fail, "engine down" if self.fail else "")

    async def openai_chat(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """A minimal OpenAI chat endpoint: ValueError for a body without a messages list."""
        if not isinstance(payload.get("messages"), list):
            raise ValueError("messages: a list of {role, content} objects is required")
        self.last_messages = payload["messages"]
        usage = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
        yield {
            "object": "chat.completion",
            "usage": usage,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": self.text}}],
        }


PAGES = {
    "autoscaling": "Serve autoscaling_config scales replicas with target_ongoing_requests.",
    "batching": "Use serve.batch to batch requests in a deployment for throughput.",
    "handles": "A DeploymentHandle calls another deployment from Python code.",
}


def publish_tiny_index(index_dir: Path, model: str = MODEL) -> str:
    """Publish a three-page index with hashed vectors; returns the version."""
    pages = [
        Page(f"docs/{name}.md", name.title(), [Section(f"docs/{name}.md", name.title(), name,
                                                       name.title(), text)])
        for name, text in PAGES.items()
    ]  # fmt: skip
    chunking = ChunkingSettings()
    chunks = SectionChunker(chunking).chunk_pages(pages)
    vectors = np.stack([hash_vector(c.embed_text(True)) for c in chunks])
    settings = BuildSettings(sources=["docs"], index_dir=index_dir, chunking=chunking,
                             embedding={"model_name": model})  # fmt: skip
    return publish(chunks, vectors, settings, num_documents=len(pages)).name


def make_service(
    index_dir: Path,
    llm: ScriptedGenerator | None,
    engines: dict[str, ScriptedGenerator] | None = None,
    cache: bool = False,
    feedback: bool = False,
    **overrides: Any,
) -> tuple[RAGService, IndexManager]:
    """A RAGService over the real index manager and search engine, with a hashed embedder;
    the index is loaded and the generator is not warmed up (warm-up tests set it). `engines`
    are more named engines; `cache` adds an in-process answer cache, `feedback` a feedback
    desk over feedback.db in the state directory (index_dir/state, as is the shadow log)."""
    overrides.setdefault("generator", {"warmup_timeout_s": 0})
    overrides.setdefault("auth", {"state_dir": index_dir / "state"})
    # Hashed vectors have no meaningful cosine: refusal is tested on its own (it sets this).
    overrides.setdefault("answers", {"min_relevance": -1.0})
    overrides.setdefault("engines", {name: {} for name in engines or {}})  # as configured
    settings = ServiceSettings(index_dir=index_dir, **overrides)
    manager = IndexManager(settings)
    manager.refresh()
    engine = SearchEngine(HashEmbedder(), manager, settings.search_batch_size,
                          settings.call_timeout_s)  # fmt: skip
    store = LocalCacheStore(MemoryCache(settings.cache))
    answers = AnswerCache(store, settings.cache) if cache else None
    experiments = Experiments(settings.variants, store)
    desk = None
    if feedback:
        ledger = SqliteFeedback(Path(settings.auth.state_dir) / "feedback.db")
        desk = FeedbackDesk(local_ledger(ledger), settings.feedback)
    service = RAGService(engine, llm, settings, engines=engines, cache=answers,
                         experiments=experiments, feedback=desk)  # fmt: skip
    return service, manager


TOPICS = ["autoscaling", "batching", "replicas", "ingress", "placement", "checkpoints",
          "streaming", "metrics", "tracing", "deployments", "handles", "actors"]  # fmt: skip


def html_page(title: str, body: str, links: Sequence[str] = ()) -> str:
    """A small docs page: links in a nav bar, then the title and one paragraph."""
    anchors = "".join(f'<a href="{link}">{link}</a> ' for link in links)
    return (
        f"<html><head><title>{title}</title></head><body><nav>{anchors}</nav>"
        f"<main><h1 id='top'>{title}</h1><p>{body}</p></main></body></html>"
    )


def write_corpus(root: Path, pages: int, sections: int = 6) -> Path:
    """Markdown pages with distinct sections, enough text to need many embedding batches."""
    root.mkdir(parents=True, exist_ok=True)
    for p in range(pages):
        lines = [f"# Guide {p}: {TOPICS[p % len(TOPICS)]}", f"Overview of guide {p}."]
        for s in range(sections):
            topic = TOPICS[(p + s) % len(TOPICS)]
            lines.append(f"## Section {s} on {topic}")
            lines.append(f"Page {p} section {s} explains {topic} in Ray Serve. " * 3)
        (root / f"guide_{p:03d}.md").write_text("\n\n".join(lines))
    return root


def build_collections(work: Path, names: tuple[str, ...], pages: int) -> None:
    """For each name, a corpus at work/NAME-pages (`pages` generated pages plus the guide/
    pages, so questions about the service are answerable) and its index at work/NAME, built
    by the real build job."""
    from pipelines.build import run_build

    for name in names:
        corpus = write_corpus(work / f"{name}-pages", pages=pages)
        for page in (PROJECT_ROOT / "guide").glob("*.md"):
            (corpus / page.name).write_text(page.read_text())
        run_build(BuildSettings(sources=[str(corpus)], index_dir=work / name))


@contextmanager
def background_load(
    send: Callable[[httpx.Client, str], httpx.Response], workers: int = 4
) -> Iterator[list[httpx.Response]]:
    """`workers` threads each send `send(client, caller)` in a closed loop for the `with`
    block (`caller` is unique per request, e.g. for X-User-ID); yields the responses as they
    arrive. Every thread has stopped when the block ends."""
    responses: list[httpx.Response] = []
    stop = threading.Event()

    def loop(worker: int) -> None:
        with httpx.Client(timeout=60) as client:
            sent = 0
            while not stop.is_set():
                responses.append(send(client, f"w{worker}-{sent}"))
                sent += 1

    threads = [threading.Thread(target=loop, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    try:
        yield responses
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)


def stop_serve() -> None:
    """Shut Serve down and wait until its controller has exited: a controller still being
    killed would be found by the next serve.start in this Ray, and die under it."""
    import ray
    from ray import serve
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    serve.shutdown()

    def controller_gone() -> bool:
        try:
            ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        except ValueError:
            return True
        return False

    wait_for(controller_gone, 120, "Serve's controller to exit")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def all_ready(url: str, calls: int = 8) -> bool:
    """/readyz answers 200 `calls` times in a row: it is per replica and the proxy spreads
    the calls, so several in a row mean every replica is ready."""
    try:
        return all(httpx.get(f"{url}/readyz", timeout=10).status_code == 200 for _ in range(calls))
    except httpx.HTTPError:
        return False


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll `condition` until it returns something truthy (returned); AssertionError past
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


class RedisServer:
    """A real redis-server on a free loopback port, keeping its files in `directory`; without
    `appendonly` nothing is persisted. Restarts on the same port and directory."""

    def __init__(self, directory: Path, appendonly: bool = False) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.appendonly = appendonly
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start it and wait until it answers PING."""
        command = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
                   "--save", "", "--appendonly", "yes" if self.appendonly else "no",
                   "--dir", str(self.directory), "--logfile", "redis.log"]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_for(self._answers, 10, f"redis-server on port {self.port}", every=0.02)
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"redis-server exited with {self.process.returncode}:\n{log}")
        # No retries: each poll is one quick try.
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1,
                             retry=Retry(NoBackoff(), 0))  # fmt: skip
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False
        finally:
            client.close()

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts connections, nothing answers (a hung server)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM, and wait for it to exit (it writes its append-only file first); a paused
        server is continued so that it can."""
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.send_signal(signal.SIGCONT)
            self.process.wait(timeout=30)
            self.process = None

    def restart(self) -> RedisServer:
        """Stop and start again, on the same port and directory."""
        self.stop()
        return self.start()


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the shipped Grafana dashboard's panels."""
    path = PROJECT_ROOT / "ops" / "grafana-dashboard.json"
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


class PrometheusServer:
    """A real Prometheus (Debian's package) on a free loopback port, with ops/prometheus.yml
    as shipped except a 1 s scrape interval and `targets` for its static job; its data in
    `directory`."""

    def __init__(self, directory: Path, targets: list[str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.targets = targets
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusServer:
        """Start it and wait until it is ready."""
        config = yaml.safe_load((PROJECT_ROOT / "ops" / "prometheus.yml").read_text())
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        for job in config["scrape_configs"]:
            for static in job.get("static_configs", []):
                static["targets"] = self.targets
        path = self.directory / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        command = ["prometheus", f"--config.file={path}",
                   f"--storage.tsdb.path={self.directory / 'data'}",
                   f"--web.listen-address=127.0.0.1:{self.port}"]  # fmt: skip
        with (self.directory / "prometheus.log").open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._ready, 60, f"prometheus on port {self.port}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            log = (self.directory / "prometheus.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"prometheus exited with {self.process.returncode}:\n{log}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, expr: str) -> dict[str, Any]:
        """The HTTP API's answer to an instant query (its `status`, `data` or `error`)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        return dict(response.json())

    def targets_up(self) -> dict[str, list[str]]:
        """Scrape job -> the health of each of its active targets."""
        active = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        jobs: dict[str, list[str]] = {}
        for target in active:
            jobs.setdefault(target["labels"]["job"], []).append(target["health"])
        return jobs

    def stop(self) -> None:
        """SIGTERM, and wait for it to exit."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None


class RayNodes:
    """A Ray head and a worker on this machine, each a separate `ray start --block` process
    with its own CPUs and a custom resource (`head_node`, `worker_node`), sharing a short
    temp dir by which their processes are found and killed; token auth off. For tests that
    drive the cluster from other processes (CLIs, HTTP): this process keeps its own Ray."""

    ENV: ClassVar[dict[str, str]] = {
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }

    def __init__(self, temp_dir: Path, cpus: int = 4) -> None:
        self.temp_dir = temp_dir  # short: Ray's socket paths must fit in 107 bytes
        self.cpus = cpus
        self.port = free_port()
        self.dashboard_port = free_port()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.env = {**os.environ, **self.ENV, "PYTHONPATH": str(PROJECT_ROOT)}

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _start(self, name: str, args: list[str]) -> None:
        ray = str(Path(sys.executable).with_name("ray"))
        command = [ray, "start", "--block", "--node-ip-address", "127.0.0.1",
                   f"--num-cpus={self.cpus}", f"--temp-dir={self.temp_dir}", *args]  # fmt: skip
        with (self.temp_dir.parent / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                       env=self.env, start_new_session=True)  # fmt: skip
        self.processes.append(process)

    def start(self) -> RayNodes:
        """Start the head (with its dashboard), then the worker; wait until both are alive."""
        self._start("head", ["--head", f"--port={self.port}", "--include-dashboard=true",
                             "--dashboard-host=127.0.0.1",
                             f"--dashboard-port={self.dashboard_port}",
                             '--resources={"head_node": 1}'])  # fmt: skip
        wait_for(lambda: len(self.alive_nodes()) == 1, 120, "the Ray head", every=1.0)
        self._start("worker", [f"--address={self.address}", '--resources={"worker_node": 1}'])
        wait_for(lambda: len(self.alive_nodes()) == 2, 120, "the Ray worker", every=1.0)
        return self

    def _state(self, what: str) -> list[dict[str, Any]]:
        """Ray's state API (`/api/v0/nodes`, `/api/v0/actors`); [] while it cannot answer."""
        try:
            body = httpx.get(f"{self.dashboard}/api/v0/{what}", params={"limit": 1000,
                             "detail": 1}, timeout=10).json()  # fmt: skip
            return list((body.get("data") or {}).get("result", {}).get("result") or [])
        except (httpx.HTTPError, ValueError, AttributeError):
            return []

    def alive_nodes(self) -> dict[str, dict[str, float]]:
        """Node id -> its resources, for the nodes alive now."""
        return {n["node_id"]: n.get("resources_total") or {} for n in self._state("nodes")
                if n["state"] == "ALIVE"}  # fmt: skip

    def node_with(self, resource: str) -> str:
        """The id of the alive node that has `resource`."""
        (node,) = [n for n, res in self.alive_nodes().items() if resource in res]
        return node

    def actor_nodes(self, class_name: str) -> list[str]:
        """The node ids of the alive actors of a class (e.g. ServeReplica:rag:Ingress)."""
        return [a["node_id"] for a in self._state("actors")
                if a["class_name"] == class_name and a["state"] == "ALIVE"]  # fmt: skip

    def kill_worker(self) -> None:
        """SIGKILL every process of the worker node, as when its machine is lost."""
        node = self.node_with("worker_node")
        os.killpg(self.processes[1].pid, signal.SIGKILL)
        self.processes[1].wait(timeout=30)
        self.kill_node(node)

    def kill_node(self, node_id: str) -> None:
        """SIGKILL the processes that name this node (its raylet and agents)."""
        import psutil

        for proc in psutil.process_iter(["cmdline"]):
            line = " ".join(proc.info["cmdline"] or [])
            if str(self.temp_dir) in line and node_id in line:
                with suppress(psutil.Error):
                    proc.kill()

    def stop(self) -> None:
        """Kill every process of the cluster."""
        import psutil

        for process in self.processes:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        for proc in psutil.process_iter(["cmdline"]):
            if str(self.temp_dir) in " ".join(proc.info["cmdline"] or []):
                with suppress(psutil.Error):
                    proc.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@contextmanager
def chromium_page(width: int = 1024, height: int = 800) -> Iterator[Any]:
    """A page in headless Chromium from Debian's package (`make setup` installs it), driven by
    Playwright with its executable_path: no browser is ever downloaded. Skips cleanly where
    chromium is missing."""
    import shutil

    import pytest
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (make setup installs it)")
    with sync_playwright() as playwright:
        # --no-sandbox: the suite may run as root, where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                             args=["--no-sandbox"])  # fmt: skip
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def sse_events(
    url: str, body: dict[str, Any], client: httpx.Client | None = None
) -> list[tuple[float, str, dict[str, Any]]]:
    """POST `body` to a Server-Sent Events route (a 200 is asserted), through `client` if
    given (e.g. a TestClient); every event as (arrival time, event name, JSON data)."""
    events: list[tuple[float, str, dict[str, Any]]] = []
    opener = client.stream if client is not None else httpx.stream
    with opener("POST", url, json=body, timeout=300) as response:
        assert response.status_code == 200, response.read()
        name = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                events.append((time.monotonic(), name, json.loads(line[5:])))
    return events


class InProcessActor:
    """A Ray actor handle over a local instance: `handle.method.remote(*args)` returns an
    awaitable, so `ActorTenantStore` runs the real actor class without Ray (unit tests)."""

    def __init__(self, instance: Any) -> None:
        self._instance = instance
        self.down = False  # True: every call fails, like a dead actor

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._instance, name)

        async def remote(*args: Any) -> Any:
            if self.down:
                raise ConnectionError("actor unavailable")
            return method(*args)

        return type("Method", (), {"remote": staticmethod(remote)})


def tenant_gate(state_dir: Path, **auth: Any) -> tuple[Any, Any]:
    """A `TenantGate` over the embedded store's actor class run in-process (no Ray), and that
    actor handle (set `.down` to simulate an outage)."""
    from deployments.tenant_store import ActorTenantStore, TenantStoreActor
    from ragcore.tenancy.gate import TenantGate
    from utils.auth_settings import AuthSettings

    actor = InProcessActor(TenantStoreActor(str(state_dir)))
    settings = AuthSettings(state_dir=state_dir, **auth)
    return TenantGate(ActorTenantStore(actor), settings, "docs"), actor


def add_key(state_dir: Path, tenant: str, **fields: Any) -> str:
    """Store a new key for `tenant` in the embedded store's SQLite file; returns the secret."""
    from ragcore.tenancy.keys import ApiKey, hash_secret, new_key_id, new_secret
    from ragcore.tenancy.sqlite_ledger import SqliteLedger

    secret = new_secret()
    ledger = SqliteLedger(state_dir / "tenants.db")
    ledger.add_key(ApiKey(new_key_id(), hash_secret(secret), tenant, **fields))
    ledger.close()
    return secret


def kill_engine_process() -> int:
    """SIGKILL vLLM's engine core process (the generator's compute); returns its pid."""
    import psutil

    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        if "EngineCore" in (proc.info["name"] or "") or "EngineCore" in " ".join(
            proc.info["cmdline"] or []
        ):
            proc.kill()
            return int(proc.info["pid"])
    raise AssertionError("no vLLM EngineCore process found")


@contextmanager
def app_on_loopback(app: Any) -> Iterator[str]:
    """An ASGI app served by uvicorn on a free loopback port in a thread, for clients that
    make their own HTTP connections (the evaluation CLIs); yields its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: server.started, 30, "uvicorn started", every=0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
