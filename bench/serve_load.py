"""Serving load: the running service over loopback against the book's designs, in one run.

    python bench/serve_load.py [--index-dir DIR] [--quick] [--wait-quiet MINUTES]

Starts a local Ray and deploys, side by side in one Serve instance:
  * our service ("rag", route /), from serve_config.yaml as `serve_index.py` deploys it, pinned
    to one index version: Ingress -> batching Embedder + hybrid Retriever + vLLM generator;
  * the book's single deployment ("book", route /book): one replica that loads the model and
    the FAISS index itself and embeds one query per request (bench/baselines.py), with Serve's
    defaults; and the same again ("book-tuned", /book-tuned) with max_ongoing_requests 100;
and, as a uvicorn subprocess on another port, a single-process FastAPI + FAISS +
sentence-transformers server over the same index (the book's design without Ray).

`/search` runs at concurrency 1, 8 and 32 against all four (levels interleaved, so drift in
the machine's load hits every system alike). `/ask/stream` runs at concurrency 1 and 8 (time to
first token, tokens/s); after Serve is shut down, the same prompts go through a plain
transformers `generate` loop, one at a time. Figures go to stdout and to the "Serving load"
section of docs/benchmarks.md.

The index: --index-dir, else the docs.ray.io index of bench/build_throughput.py
(/tmp/rag-bench/index) when published, else one built here over the project's docs/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Ray starts workers (every Serve replica, the vLLM engine) at niceness 15, which on a shared
# machine starves them next to any nice-0 job while the plain server and the transformers loop
# would run at 0: run every measured process at 0, so all compete on equal terms.
os.environ["RAY_worker_niceness"] = "0"  # noqa: SIM112 (Ray reads this exact name)

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from bench.report import write_section  # noqa: E402
from deployments.prompt import build_messages  # noqa: E402
from deployments.protocols import Hit  # noqa: E402
from pipelines.publish import MANIFEST_FILE, current_version  # noqa: E402
from utils.settings import ServiceSettings  # noqa: E402

QA_FILE = ROOT.parent / "shared" / "data" / "ray-docs" / "qa-dev.jsonl"
RAY_DOCS_INDEX = Path("/tmp/rag-bench/index")  # bench/build_throughput.py's default output
DOCS_INDEX = Path("/tmp/rag-serve-bench/index")
CONFIG = ROOT / "serve_config.yaml"
FALLBACK_QUESTIONS = [
    "How do I build the index from a documentation site?",
    "How does the service stay up while a new index version is loaded?",
    "What happens to /ask when the generator fails?",
    "How do I change the chunk size?",
    "Which settings control autoscaling of the embedder?",
    "How are query embeddings batched?",
    "What does the retriever do when CURRENT changes?",
    "How do I run the service on a GPU?",
    "How is the BM25 leg fused with dense retrieval?",
    "What does /readyz report?",
    "Where do the Prometheus metrics come from?",
    "How do I resume an interrupted build?",
]
SEARCH_K = 5
ASK_TOP_K = 5
OURS = "ours (Ray Serve app)"
BOOK = "book (single Ray deployment)"
BOOK_TUNED = "book, max_ongoing_requests 100"
# Serve's default max_ongoing_requests (5) makes the router hold the other requests back from
# the book's replica; the tuned copy shows the same design without that queue in front of it.
BOOK_TUNED_MAX_ONGOING = 100
PLAIN = "plain FastAPI"
OURS_ASK = "ours (/ask/stream, vLLM)"
TRANSFORMERS = "transformers loop"


@dataclass
class Sample:
    """One request's outcome."""

    ok: bool
    latency_s: float
    error: str = ""
    ttft_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    done: dict[str, Any] | None = None
    question: str = ""


@dataclass
class Level:
    """One (system, route, concurrency) measurement."""

    system: str
    concurrency: int
    samples: list[Sample]
    wall_s: float
    skipped: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]

    @property
    def failed(self) -> int:
        return len(self.samples) - len(self.ok) + self.skipped

    @property
    def rps(self) -> float:
        return len(self.ok) / self.wall_s if self.wall_s else 0.0

    @property
    def tokens_per_s(self) -> float:
        return sum(s.completion_tokens for s in self.ok) / self.wall_s if self.wall_s else 0.0


def pct(values: list[float], q: float) -> float:
    """Percentile in milliseconds (nan when empty)."""
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def loadavg() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def wait_quiet(threshold: float, minutes: float) -> bool:
    """Block until the 1-minute load average is below `threshold` on two readings 60 s apart
    (it stayed low for a minute); False when `minutes` pass first."""
    deadline = time.monotonic() + minutes * 60
    below = 0
    while True:
        load = loadavg()[0]
        below = below + 1 if load < threshold else 0
        print(f"[wait-quiet] load {load:.2f} (below {threshold} x{below})", flush=True)
        if below >= 2:
            return True
        if time.monotonic() + 60 > deadline:
            return False
        time.sleep(60)


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def resolve_index(index_dir: Path | None) -> tuple[Path, str]:
    """The index root and the version to pin: given, the docs.ray.io one, or docs/ (built)."""
    if index_dir is None:
        index_dir = RAY_DOCS_INDEX if current_version(RAY_DOCS_INDEX) else DOCS_INDEX
    index_dir = index_dir.resolve()
    if current_version(index_dir) is None:
        if index_dir != DOCS_INDEX:
            raise SystemExit(f"error: no index published in {index_dir}")
        print(f"building an index of docs/ in {index_dir}", flush=True)
        subprocess.run(
            [sys.executable, "build_index.py", "--index-dir", str(index_dir)],
            cwd=ROOT,
            check=True,
            timeout=1800,
        )
    version = current_version(index_dir)
    assert version is not None
    return index_dir, version


def load_questions() -> list[str]:
    """Realistic docs questions: the Ray docs dev set when present, else a built-in list."""
    if QA_FILE.exists():
        with QA_FILE.open(encoding="utf-8") as handle:
            questions = [json.loads(line)["question"] for line in handle if line.strip()]
        return [q.strip() for q in questions if q.strip()]
    return list(FALLBACK_QUESTIONS)


# --- Serve ------------------------------------------------------------------------------------


def serve_config(
    index_dir: Path, version: str, port: int, book_threads: int, rag_env: dict[str, str]
) -> dict[str, Any]:
    """serve_config.yaml as serve_index.py reads it, pinned to `version`, plus the book's app
    twice (Serve's defaults, and max_ongoing_requests raised); `rag_env` adds environment
    variables to our app's runtime_env (for experiments)."""
    import serve_index

    flags = argparse.Namespace(config=CONFIG, index_dir=index_dir, no_generator=False, port=port)
    config = serve_index.load_config(flags)
    rag = next(a for a in config["applications"] if a["name"] == serve_index.APP_NAME)
    # Pinned in both places: user_config overrides the args, and a build publishing a new
    # version mid-run must not trigger a hot swap under load.
    rag["args"]["index_version"] = version
    for deployment in rag.get("deployments", []):
        if deployment.get("name") == "Retriever":
            deployment.setdefault("user_config", {})["index_version"] = version
    if rag_env:
        runtime_env = rag.setdefault("runtime_env", {})
        runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), **rag_env}
    model = ServiceSettings.model_validate(rag["args"]).embedding_model
    book_args = {
        "index_dir": str(index_dir),
        "version": version,
        "embedding_model": model,
        "num_threads": book_threads,
    }
    book_env = {"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}}
    for name, max_ongoing in (("book", 0), ("book-tuned", BOOK_TUNED_MAX_ONGOING)):
        options = [{"name": "BookSearch", "max_ongoing_requests": max_ongoing}]
        config["applications"].append(
            {
                "name": name,
                "route_prefix": f"/{name}",
                "import_path": "bench.baselines:build_book_app",
                "runtime_env": book_env,
                "args": book_args,
                "deployments": options if max_ongoing else [],
            }
        )
    return config


def deploy(config: dict[str, Any], timeout_s: float) -> None:
    """Start Serve on the config's port and deploy every app; wait until all are RUNNING."""
    from ray import serve
    from ray.serve._private import api as serve_api
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(config)
    client = serve_api.serve_start(http_options=schema.http_options.model_dump())
    client.deploy_apps(schema, _blocking=False)
    names = [a["name"] for a in config["applications"]]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        apps = serve.status().applications
        states = {n: apps[n].status if n in apps else "MISSING" for n in names}
        for name, state in states.items():
            if state in ("DEPLOY_FAILED", "UNHEALTHY"):
                app = apps[name]
                msgs = [f"{d}: {s.message}" for d, s in app.deployments.items() if s.message]
                raise RuntimeError(f"{name}: {'; '.join(msgs) or app.message}")
        if all(s == "RUNNING" for s in states.values()):
            return
        time.sleep(2.0)
    raise TimeoutError(f"apps not running after {timeout_s:.0f}s")


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `url` until 200 (and, for /readyz, until the generator reports ready)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with code {proc.returncode}")
        try:
            response = httpx.get(url, timeout=10)
            if response.status_code == 200 and response.json().get("generator", "ready") in (
                "ready",
                "disabled",
            ):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(2.0)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f}s")


def replica_counts() -> dict[str, int]:
    """Running replicas per deployment (autoscaling may add some under load)."""
    from ray import serve

    counts: dict[str, int] = {}
    for app_name, app in serve.status().applications.items():
        for name, dep in app.deployments.items():
            states = {str(getattr(k, "value", k)): n for k, n in dep.replica_states.items()}
            counts[f"{app_name}/{name}"] = int(states.get("RUNNING", 0))
    return counts


# --- load generation --------------------------------------------------------------------------

Call = Callable[[httpx.AsyncClient, int], Awaitable[Sample]]


async def measure(
    system: str,
    call: Call,
    concurrency: int,
    warmup: int,
    total: int,
    limit_s: float,
    timeout_s: float,
    first: int = 0,
) -> Level:
    """`warmup` untimed requests, then `total` timed ones from `concurrency` workers over one
    keep-alive client; requests not started within `limit_s` are counted as skipped."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=timeout_s) as client:
        counter = iter(range(first, first + warmup))

        async def warm() -> None:
            for i in counter:
                await call(client, i)

        await asyncio.gather(*(warm() for _ in range(min(concurrency, max(warmup, 1)))))
        results: list[Sample] = []
        todo = iter(range(first + warmup, first + warmup + total))
        deadline = time.monotonic() + limit_s

        async def worker() -> None:
            for i in todo:
                if time.monotonic() > deadline:
                    return
                results.append(await call(client, i))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    errors = Counter(s.error for s in results if not s.ok)
    return Level(system, concurrency, results, wall, total - len(results), errors)


def search_call(url: str, questions: list[str]) -> Call:
    """GET {url}?query=...&k=5, cycling through the questions."""

    async def call(client: httpx.AsyncClient, i: int) -> Sample:
        start = time.perf_counter()
        try:
            response = await client.get(
                url, params={"query": questions[i % len(questions)], "k": SEARCH_K}
            )
            latency = time.perf_counter() - start
        except httpx.HTTPError as exc:
            return Sample(False, time.perf_counter() - start, type(exc).__name__)
        if response.status_code != 200:
            return Sample(False, latency, f"HTTP {response.status_code}")
        if not response.json().get("results"):
            return Sample(False, latency, "no results")
        return Sample(True, latency)

    return call


def ask_call(url: str, questions: list[str], max_tokens: int) -> Call:
    """POST {url} (SSE): time to the first `token` event, usage from the `done` event."""

    async def call(client: httpx.AsyncClient, i: int) -> Sample:
        question = questions[i % len(questions)]
        body = {"question": question, "top_k": ASK_TOP_K, "max_tokens": max_tokens}
        start = time.perf_counter()
        ttft: float | None = None
        event = ""
        done: dict[str, Any] | None = None
        try:
            async with client.stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    return Sample(
                        False, time.perf_counter() - start, f"HTTP {response.status_code}"
                    )
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        if event == "token" and ttft is None:
                            ttft = time.perf_counter() - start
                        elif event == "done":
                            done = json.loads(line[5:])
        except httpx.HTTPError as exc:
            return Sample(False, time.perf_counter() - start, type(exc).__name__)
        latency = time.perf_counter() - start
        if done is None:
            return Sample(False, latency, "no done event")
        usage = done.get("tokens_used") or {}
        completion = int(usage.get("completion") or 0)
        if done.get("status") != "ok" or not completion:
            return Sample(False, latency, f"{done.get('status')}: {done.get('message', '')}"[:80])
        prompt = int(usage.get("prompt") or 0)
        return Sample(True, latency, "", ttft, prompt, completion, done, question)

    return call


# --- report -----------------------------------------------------------------------------------


def search_rows(levels: list[Level]) -> list[str]:
    rows = [
        "| system | concurrency | requests ok | errors | requests/s | p50 ms | p95 ms | p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for lv in levels:
        lat = [s.latency_s for s in lv.ok]
        rows.append(
            f"| {lv.system} | {lv.concurrency} | {len(lv.ok)} | {lv.failed} | "
            f"{lv.rps:.1f} | {pct(lat, 50):.1f} | {pct(lat, 95):.1f} | "
            f"{pct(lat, 99):.1f} |"
        )
    return rows


def ask_rows(levels: list[Level]) -> list[str]:
    """Decode tok/s is per request, after its first token: (completion - 1) / (latency - TTFT);
    it separates the decode speed from prefill and queueing, which TTFT holds."""
    rows = [
        "| system | concurrency | requests ok | errors | TTFT p50 ms | TTFT p99 ms "
        "| latency p50 ms | latency p99 ms | prompt tokens (mean) | completion tokens "
        "| decode tok/s per request (mean) | tokens/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for lv in levels:
        ok = lv.ok
        ttft = [s.ttft_s for s in ok if s.ttft_s is not None]
        lat = [s.latency_s for s in ok]
        prompt = np.mean([s.prompt_tokens for s in ok]) if ok else float("nan")
        decode = [
            (s.completion_tokens - 1) / (s.latency_s - s.ttft_s)
            for s in ok
            if s.ttft_s is not None and s.completion_tokens > 1 and s.latency_s > s.ttft_s
        ]
        rows.append(
            f"| {lv.system} | {lv.concurrency} | {len(ok)} | {lv.failed} | "
            f"{pct(ttft, 50):.0f} | {pct(ttft, 99):.0f} | {pct(lat, 50):.0f} | "
            f"{pct(lat, 99):.0f} | {prompt:.0f} | {sum(s.completion_tokens for s in ok)} | "
            f"{np.mean(decode) if decode else float('nan'):.1f} | {lv.tokens_per_s:.1f} |"
        )
    return rows


def find(levels: list[Level], system: str, concurrency: int) -> Level | None:
    return next(
        (lv for lv in levels if lv.system == system and lv.concurrency == concurrency), None
    )


def ratio_line(
    what: str, ours: Level | None, base: Level | None, attr: str, target: float | None
) -> tuple[str, bool]:
    """'what: a / b = r x (target >= t x): met' and whether it was met (no target: no verdict)."""
    if ours is None or base is None or not getattr(base, attr):
        return f"- {what}: not measured", False
    a, b = getattr(ours, attr), getattr(base, attr)
    line = f"- {what}: {a:.1f} / {b:.1f} = **{a / b:.2f}x**"
    if target is None:
        return line, False
    met = a / b >= target and ours.failed == 0
    return f"{line} (target >= {target}x): {'met' if met else 'NOT met'}", met


def prefill_bound(loop: Level | None) -> list[str]:
    """How much of the loop's time is prefill, and the ratio that leaves for any server that
    batches decoding but prefills no faster (prefill is compute-bound: batching does not help)."""
    if loop is None or not loop.ok:
        return []
    ttft = float(np.mean([s.ttft_s or 0.0 for s in loop.ok]))
    latency = float(np.mean([s.latency_s for s in loop.ok]))
    prompt = float(np.mean([s.prompt_tokens for s in loop.ok]))
    return [
        f"- prefill bound: the transformers loop spends {ttft:.2f} s of its {latency:.2f} s per "
        f"request ({100 * ttft / latency:.0f}%) reading the {prompt:.0f}-token prompt before the "
        "first token; a server that made decoding free but prefilled no faster would reach at "
        f"most **{latency / ttft:.1f}x** its tokens/s"
    ]


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=None)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: few requests, concurrency 1 and 8, no report",
    )
    parser.add_argument("--search-requests", type=int, default=200, help="per system and level")
    parser.add_argument("--search-levels", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--ask-requests",
        type=int,
        nargs=2,
        default=[4, 16],
        metavar=("AT_1", "AT_8"),
        help="/ask requests at concurrency 1 and 8",
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=0,
        help="answer length cap for /ask and the loop (0: the service's configured max_tokens)",
    )
    parser.add_argument("--skip-ask", action="store_true", help="search only")
    parser.add_argument(
        "--book-threads",
        type=int,
        default=0,
        help="torch threads of the book deployment (0: Ray's default)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="MINUTES",
        help="first wait up to this long for 1-min load < --quiet-load",
    )
    parser.add_argument("--quiet-load", type=float, default=1.5)
    parser.add_argument(
        "--rag-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra env var for our app's replicas (experiments; reported)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    args.rag_env = dict(item.split("=", 1) for item in args.rag_env)
    if args.quick:
        args.search_requests, args.search_levels = 30, [1, 8]
        args.ask_requests, args.max_tokens, args.no_write = [2, 8], 32, True
    return args


async def run_search(
    bases: dict[str, str], questions: list[str], levels: list[int], total: int
) -> list[Level]:
    """Every level against every system, interleaved."""
    results: list[Level] = []
    offset = 0
    for concurrency in levels:
        for system, url in bases.items():
            warmup = max(2 * concurrency, 10)
            level = await measure(
                system,
                search_call(url, questions),
                concurrency,
                warmup,
                total,
                limit_s=180,
                timeout_s=60,
                first=offset,
            )
            results.append(level)
            print(*search_rows([level])[2:], flush=True)
        offset += total
    return results


async def run_ask(
    url: str, questions: list[str], counts: list[int], max_tokens: int
) -> tuple[list[Level], list[Sample]]:
    """Warm-up, then concurrency 1 and 8 over distinct questions (so no prompt repeats)."""
    call = ask_call(url, questions, max_tokens)
    levels = []
    first = 0
    for concurrency, total in zip((1, 8), counts, strict=True):
        warmup = 2 if concurrency == 1 else 0
        level = await measure(
            OURS_ASK, call, concurrency, warmup, total, limit_s=420, timeout_s=300, first=first
        )
        levels.append(level)
        print(*ask_rows([level])[2:], flush=True)
        first += warmup + total
    return levels, levels[-1].ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    index_dir, version = resolve_index(args.index_dir)
    questions = load_questions()
    quiet = True
    if args.wait_quiet > 0:
        quiet = wait_quiet(args.quiet_load, args.wait_quiet)
    load_before = loadavg()
    print(
        f"index {index_dir} version {version}; {len(questions)} questions; load {load_before}",
        flush=True,
    )

    import ray
    from ray import serve

    from utils.ray_runtime import init_ray

    port, plain_port = free_port(), free_port()
    config = serve_config(index_dir, version, port, args.book_threads, args.rag_env)
    service = ServiceSettings.model_validate(config["applications"][0]["args"])
    args.max_tokens = args.max_tokens or service.generator.max_tokens
    args.embed_threads = service.embed_threads  # reported
    work = Path("/tmp/rag-serve-bench")
    work.mkdir(parents=True, exist_ok=True)
    plain_log = (work / "plain-server.log").open("wb")
    plain = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.baselines",
            "--index-dir",
            str(index_dir),
            "--version",
            version,
            "--model",
            service.embedding_model,
            "--port",
            str(plain_port),
        ],
        cwd=ROOT,
        stdout=plain_log,
        stderr=subprocess.STDOUT,
    )
    search_levels: list[Level] = []
    ask_levels: list[Level] = []
    answered: list[Sample] = []
    replicas: dict[str, int] = {}
    started = time.perf_counter()
    try:
        init_ray(None, num_cpus=8)
        deploy(config, timeout_s=900)
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/readyz", 600)
        wait_http(f"http://127.0.0.1:{plain_port}/healthz", 300, plain)
        print(f"all servers ready after {time.perf_counter() - started:.0f}s", flush=True)
        bases = {
            OURS: f"{base}/search",
            BOOK: f"{base}/book/search",
            BOOK_TUNED: f"{base}/book-tuned/search",
            PLAIN: f"http://127.0.0.1:{plain_port}/search",
        }
        search_levels = asyncio.run(
            run_search(bases, questions, args.search_levels, args.search_requests)
        )
        if not args.skip_ask:
            ask_levels, answered = asyncio.run(
                run_ask(f"{base}/ask/stream", questions, args.ask_requests, args.max_tokens)
            )
        replicas = replica_counts()
    finally:
        plain.terminate()
        try:
            plain.wait(timeout=30)
        except subprocess.TimeoutExpired:
            plain.kill()
        plain_log.close()
        serve.shutdown()
        ray.shutdown()
    load_after_serve = loadavg()

    if answered:
        # Same prompts as concurrency 8: rebuilt from the sources each answer was given.
        from bench.baselines import transformers_generate

        max_chars = service.generator.max_context_chars
        conversations = [
            build_messages(
                s.question,
                [Hit(h["content"], h["source"], h["score"]) for h in (s.done or {})["sources"]],
                max_chars,
            )
            for s in answered
        ]
        start = time.perf_counter()
        timings = transformers_generate(
            service.generator.model_source, conversations, args.max_tokens
        )
        wall = time.perf_counter() - start
        samples = [
            Sample(True, t.total_s, "", t.ttft_s, t.prompt_tokens, t.completion_tokens)
            for t in timings
        ]
        ask_levels.append(Level(TRANSFORMERS, 1, samples, sum(t.total_s for t in timings)))
        print(*ask_rows(ask_levels[-1:])[2:], f"(incl. model load: {wall:.0f}s)", flush=True)
    load_end = loadavg()
    return report(
        args,
        index_dir,
        version,
        search_levels,
        ask_levels,
        replicas,
        quiet,
        (load_before, load_after_serve, load_end),
    )


def report(
    args: argparse.Namespace,
    index_dir: Path,
    version: str,
    search_levels: list[Level],
    ask_levels: list[Level],
    replicas: dict[str, int],
    quiet: bool,
    loads: tuple[tuple[float, float, float], ...],
) -> int:
    """Print the tables and the targets; write the section unless --no-write."""
    manifest = json.loads((index_dir / version / MANIFEST_FILE).read_text(encoding="utf-8"))
    search_c = max(args.search_levels)
    lines = ["### /search", "", *search_rows(search_levels), ""]
    line, search_met = ratio_line(
        f"`/search` requests/s at concurrency {search_c}, ours / book",
        find(search_levels, OURS, search_c),
        find(search_levels, BOOK, search_c),
        "rps",
        1.5,
    )
    tuned, _ = ratio_line(
        f"for reference, ours / the book with max_ongoing_requests {BOOK_TUNED_MAX_ONGOING}",
        find(search_levels, OURS, search_c),
        find(search_levels, BOOK_TUNED, search_c),
        "rps",
        None,
    )
    lines += [line, tuned, ""]
    ask_met = False
    if ask_levels:
        lines += ["### /ask", "", *ask_rows(ask_levels), ""]
        line, ask_met = ratio_line(
            "`/ask` tokens/s at concurrency 8, ours / transformers loop",
            find(ask_levels, OURS_ASK, 8),
            find(ask_levels, TRANSFORMERS, 1),
            "tokens_per_s",
            5.0,
        )
        lines += [line, *prefill_bound(find(ask_levels, TRANSFORMERS, 1)), ""]
    errors = Counter[str]()
    for lv in search_levels + ask_levels:
        errors.update({f"{lv.system} c={lv.concurrency}: {e}": n for e, n in lv.errors.items()})
        if lv.skipped:
            errors[f"{lv.system} c={lv.concurrency}: not started within the time limit"] += (
                lv.skipped
            )
    lines.append(
        "Errors: "
        + ("none" if not errors else "; ".join(f"{k} x{n}" for k, n in errors.items()))
        + "."
    )
    if replicas:
        lines.append(
            "Replicas running at the end: "
            + ", ".join(f"{k} {v}" for k, v in sorted(replicas.items()))
            + "."
        )
    before, after_serve, end = loads
    load_note = (
        f"1/5/15-min load average {before[0]:.2f}/{before[1]:.2f}/{before[2]:.2f} "
        f"before the run, {after_serve[0]:.2f} after the Serve part, {end[0]:.2f} at "
        "the end"
    )
    if not quiet:
        load_note += (
            " (the machine never got quiet: other jobs were running, so the absolute "
            "figures are low; the side-by-side ratios are what to read)"
        )
    intro = (
        f"`python bench/serve_load.py` drives three servers over loopback from one asyncio + "
        f"httpx client ({os.cpu_count()} cores, no GPU; {load_note}). Index: "
        f"`{index_dir}` version {version}, {manifest.get('num_chunks')} chunks of "
        f"{manifest.get('num_documents')} pages, model {manifest.get('embedding_model')}. "
        f"Queries: {'the Ray docs dev-set questions' if QA_FILE.exists() else 'built-in questions'}"
        f", k={SEARCH_K}; {args.search_requests} timed requests per system and level after a "
        "warm-up, levels interleaved. **Ours** is deployed from `serve_config.yaml` (as "
        "`serve_index.py` does): Ingress (0.5 CPU) -> Embedder (1 CPU, "
        f"{args.embed_threads} torch thread(s), "
        "`@serve.batch` up to 32 queries / 5 ms) and Retriever (hybrid FAISS + BM25 with RRF), "
        "vLLM behind `ray.serve.llm`. **Book**: one Serve deployment with Serve's defaults (1 "
        "replica, 1 CPU, `max_ongoing_requests` 5, torch threads "
        f"{args.book_threads or 'from Ray (OMP_NUM_THREADS=1)'}) that loads the model and FAISS "
        "index itself and embeds one query per request, then searches; in the same Serve "
        f"instance, through the same proxy; also run as a second app with "
        f"`max_ongoing_requests` {BOOK_TUNED_MAX_ONGOING}, so that Serve's router does not hold "
        "requests back from it. **Plain**: one uvicorn process, FastAPI + FAISS + "
        "sentence-transformers, one query embedded per request (sync route in FastAPI's thread "
        "pool). Both baselines search FAISS only; ours also runs BM25 + fusion per query. "
        f"`/ask`: top_k {ASK_TOP_K}, max_tokens {args.max_tokens}, greedy, distinct questions "
        "(no repeated prompt); tokens/s = completion tokens / wall time of the level; TTFT = "
        "time to the first `event: token` (includes embedding, retrieval and prefill). The "
        "transformers loop then runs the concurrency-8 prompts (rebuilt from the sources each "
        "answer got) one at a time after Serve is shut down: `AutoModelForCausalLM` float32, "
        "`generate` with `do_sample=False`, torch's default threads (both cores), after one "
        "untimed warm-up. Every measured process runs at niceness 0 (Ray's workers too: "
        "`RAY_worker_niceness=0`)."
        + (f" Experiment: our replicas got the env vars {args.rag_env}." if args.rag_env else "")
    )
    print(intro)
    for text in lines:
        print(text)
    if not args.no_write:
        write_section("Serving load", intro, lines)
        print("written to docs/benchmarks.md")
    print(
        f"targets: /search {'met' if search_met else 'NOT met'}, /ask "
        f"{'met' if ask_met else 'NOT met' if ask_levels else 'not measured'}"
    )
    failed = any(lv.failed for lv in search_levels + ask_levels)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
