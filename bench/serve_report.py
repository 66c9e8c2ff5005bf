"""bench/serve_load.py's report: the tables, the ratios against the targets, the results JSON."""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import QA_FILE
from bench.cpu_usage import CpuUse
from bench.engine_ceiling import Ceiling
from bench.loadgen import ASK_TOP_K, SEARCH_K, Level
from bench.report import table, table_lines
from utils.ray_runtime import ha_proxy_ingress
from utils.settings import ServiceSettings

TITLE = "Serving load"
OURS = "ours (Ray Serve app)"
PLAIN = "plain FastAPI"
BOOK = "book (single Ray deployment, max_ongoing_requests 100)"
BOOK_DEFAULTS = "book, Serve's defaults (max_ongoing_requests 5)"
OURS_ASK = "ours (/ask/stream, vLLM)"
TRANSFORMERS = "transformers loop"


@dataclass
class RunInfo:
    """What the run measured against, for the intro and the JSON."""

    index_dir: Path
    version: str
    manifest: dict[str, Any]
    service: ServiceSettings
    search_requests: int
    max_tokens: int
    book_threads: int
    ingress_replicas: int | None
    book_defaults: bool
    rag_env: dict[str, str]
    quiet: bool
    loads: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    replicas: dict[str, int] = field(default_factory=dict)
    ask_cpu: CpuUse | None = None
    idle_cpu: CpuUse | None = None


@dataclass(frozen=True)
class Target:
    """ours / base against a bound; `met` is None when either side was not measured."""

    what: str
    ours: float | None
    base: float | None
    op: str  # ">=", "<=" or "<": how ours / base must compare with `bound`
    bound: float
    met: bool | None

    @property
    def verdict(self) -> str:
        """met, NOT met or not measured."""
        return "not measured" if self.met is None else "met" if self.met else "NOT met"

    def line(self) -> str:
        """One markdown bullet."""
        if self.met is None or self.ours is None or not self.base:
            return f"- {self.what}: not measured"
        return (
            f"- {self.what}: {self.ours:.1f} / {self.base:.1f} = **{self.ours / self.base:.2f}x** "
            f"(target {self.op} {self.bound}x): {self.verdict}"
        )


def find(levels: list[Level], system: str, concurrency: int) -> Level | None:
    """The level of `system` at `concurrency`, if measured."""
    return next((lv for lv in levels if (lv.system, lv.concurrency) == (system, concurrency)), None)


def target(
    what: str, ours: Level | None, base: Level | None, figure: str, op: str, bound: float
) -> Target:
    """Compare one figure ("rps", "p50", "p99", "tokens_per_s") of two levels; a level with
    failures never meets its target."""
    if ours is None or base is None:
        return Target(what, None, None, op, bound, None)
    a, b = _figure(ours, figure), _figure(base, figure)
    if not b or math.isnan(a) or math.isnan(b):
        return Target(what, a, b, op, bound, None)
    return Target(what, a, b, op, bound, _holds(a / b, op, bound) and ours.failed == 0)


def _figure(level: Level, figure: str) -> float:
    return level.latency_ms(float(figure[1:])) if figure.startswith("p") else getattr(level, figure)


def _holds(ratio: float, op: str, bound: float) -> bool:
    return {">=": ratio >= bound, "<=": ratio <= bound, "<": ratio < bound}[op]


def search_targets(levels: list[Level]) -> list[Target]:
    """The issue's /search targets, all against the plain FastAPI server."""
    checks = [  # (concurrency, figure, op, bound)
        (32, "rps", ">=", 2.5),
        (32, "p99", "<", 1.0),
        (1, "p50", "<=", 1.2),
    ]
    return [
        target(
            f"`/search` {'req/s' if figure == 'rps' else figure + ' ms'} at concurrency {c}, "
            "ours / plain FastAPI",
            find(levels, OURS, c),
            find(levels, PLAIN, c),
            figure,
            op,
            bound,
        )
        for c, figure, op, bound in checks
    ]


def ask_target(ask: list[Level], ceiling: Ceiling | None) -> Target:
    """/ask tokens/s at concurrency 8 as a share of the engine's own ceiling on the same work."""
    what = (
        "`/ask` tokens/s at concurrency 8, ours / the engine alone (same prompts, same answer "
        "lengths, 8 in flight)"
    )
    ours = find(ask, OURS_ASK, 8)
    if ours is None or ceiling is None or not ceiling.equal.tokens_per_s:
        return Target(what, None, None, ">=", 0.9, None)
    base = ceiling.equal.tokens_per_s
    met = ours.tokens_per_s / base >= 0.9 and ours.failed == 0
    return Target(what, ours.tokens_per_s, base, ">=", 0.9, met)


def search_table(levels: list[Level]) -> dict[str, Any]:
    """req/s and latency percentiles per system and concurrency."""
    columns = ["system", "concurrency", "requests ok", "errors", "requests/s", "p50 ms",
               "p95 ms", "p99 ms"]  # fmt: skip
    rows = [
        [lv.system, lv.concurrency, len(lv.ok), lv.failed, lv.rps, lv.latency_ms(50),
         lv.latency_ms(95), lv.latency_ms(99)]
        for lv in levels
    ]  # fmt: skip
    return table(columns, rows, "lrrrrrrr", [None] * 4 + [".1f"] * 4)


def ratio_table(levels: list[Level]) -> dict[str, Any]:
    """Ours over each baseline at each concurrency: req/s (higher is better) and latency
    percentiles (lower is better)."""
    rows = []
    for ours in (lv for lv in levels if lv.system == OURS):
        for base in (lv for lv in levels if lv.concurrency == ours.concurrency):
            if base.system == OURS or not base.rps:
                continue
            ratios = [ours.latency_ms(q) / base.latency_ms(q) for q in (50, 95, 99)]
            rows.append([ours.concurrency, base.system, ours.rps / base.rps, *ratios])
    columns = ["concurrency", "baseline", "req/s", "p50", "p95", "p99"]
    return table(columns, rows, "rlrrrr", [None, None] + ["{:.2f}x"] * 4)


ASK_COLUMNS = ["system", "concurrency", "requests ok", "errors", "TTFT p50 ms", "TTFT p99 ms",
               "latency p50 ms", "latency p99 ms", "prompt tokens (mean)", "completion tokens",
               "decode tok/s per request (mean)", "tokens/s"]  # fmt: skip


def ask_table(levels: list[Level]) -> dict[str, Any]:
    """TTFT, latency, tokens and tokens/s per level. Decode tok/s is per request, after its
    first token: it separates the decode speed from prefill and queueing, which TTFT holds."""
    rows = []
    for lv in levels:
        ok, generated = lv.ok, lv.generated
        prompt = sum(s.prompt_tokens for s in generated) / len(generated) if generated else None
        completion = sum(s.completion_tokens for s in ok)
        rows.append([lv.system, lv.concurrency, len(ok), lv.failed, lv.ttft_ms(50),
                     lv.ttft_ms(99), lv.latency_ms(50), lv.latency_ms(99), prompt, completion,
                     lv.decode_tokens_per_s(), lv.tokens_per_s])  # fmt: skip
    formats = [None] * 4 + [".0f"] * 5 + [None, ".1f", ".1f"]
    return table(ASK_COLUMNS, rows, "l" + "r" * 11, formats)


def print_levels(levels: list[Level], ask: bool = False) -> None:
    """The levels' table rows, without the header, to stdout."""
    block = ask_table(levels) if ask else search_table(levels)
    print(*table_lines(block)[2:], sep="\n", flush=True)


def _errors_line(levels: list[Level]) -> str:
    errors = Counter[str]()
    for lv in levels:
        errors.update({f"{lv.system} c={lv.concurrency}: {e}": n for e, n in lv.errors.items()})
        if lv.skipped:
            errors[f"{lv.system} c={lv.concurrency}: not started within the time limit"] += (
                lv.skipped
            )
    line = "Errors: " + ("; ".join(f"{k} x{n}" for k, n in errors.items()) or "none") + "."
    without = Counter[str]()
    for lv in levels:
        without.update({f"{lv.system} c={lv.concurrency}: {k}": n
                        for k, n in lv.without_engine().items()})  # fmt: skip
    if without:
        line += " Answered without the engine (ok, no tokens generated; counted in the wall "
        line += "time): " + "; ".join(f"{k} x{n}" for k, n in without.items()) + "."
    return line


def _ingress_note() -> str:
    """Which HTTP ingress Serve ran: HAProxy (the high-throughput mode init_ray sets) or its
    Python proxy actor."""
    if ha_proxy_ingress():
        return "HAProxy in front of the replicas' own HTTP servers, gRPC between replicas"
    return "Serve's Python proxy actor"


def _load_note(info: RunInfo) -> str:
    loads = info.loads
    before = loads.get("before", (0.0, 0.0, 0.0))
    note = (
        f"1/5/15-min load average {before[0]:.2f}/{before[1]:.2f}/{before[2]:.2f} before the "
        f"run, {loads.get('after serve', before)[0]:.2f} after the Serve part, "
        f"{loads.get('end', before)[0]:.2f} at the end"
    )
    if not info.quiet:
        note += (
            " (the machine never got quiet: other jobs were running, so the absolute "
            "figures are low; the side-by-side ratios are what to read)"
        )
    return note


def intro(info: RunInfo) -> str:
    """The section's opening paragraph: what ran, against what, how."""
    m, s = info.manifest, info.service
    replicas = (
        f"{info.ingress_replicas} replica(s)"
        if info.ingress_replicas
        else "replicas as serve_config.yaml sets them"
    )
    queries = "the Ray docs dev-set questions" if QA_FILE.exists() else "built-in questions"
    book_threads = info.book_threads or "from Ray (OMP_NUM_THREADS=1)"
    book_defaults = (
        ", and again with Serve's defaults (`max_ongoing_requests` 5)" if info.book_defaults else ""
    )
    text = (
        f"`python bench/serve_load.py` drives every server over loopback from one asyncio + "
        f"httpx client, closed loop ({os.cpu_count()} cores, no GPU; {_load_note(info)}). "
        f"Index: `{info.index_dir}` version {info.version}, {m.get('num_chunks')} chunks of "
        f"{m.get('num_documents')} pages, model {m.get('embedding_model')}. Queries: {queries}, "
        f"k={SEARCH_K}; {info.search_requests} timed requests per system and level after a "
        "warm-up, levels interleaved. **Ours** is deployed from `serve_config.yaml` through "
        "`deployments.launch` (as `serve_index.py` does), pinned to the index version: the "
        f"Ingress ({replicas}) embeds queries in-process ({s.query_encoder} encoder, "
        f"{s.embed_threads} thread(s); "
        f"batches of up to {s.search_batch_size} queries, no batching window, encoded "
        f"{s.embed_chunk_size} at a time by length) and runs hybrid "
        "FAISS + BM25 retrieval with RRF in the same replica; vLLM behind `ray.serve.llm` "
        "answers /ask (`ray.serve.llm`'s LLMServer replica, whose vLLM engine core runs in its "
        "own process). **Plain**: one uvicorn process, FastAPI + FAISS + sentence-transformers, "
        "one query embedded per request (sync route in FastAPI's thread pool). **Book**: the "
        "book's single Serve deployment (1 replica, 1 CPU, torch threads "
        f"{book_threads}) that loads the model and FAISS index itself and embeds one query per "
        "request, with `max_ongoing_requests` 100, in the same Serve instance behind the same "
        f"proxy{book_defaults}. Serve's ingress: {_ingress_note()}. Both baselines search FAISS "
        "only; ours also runs BM25 + fusion per query. "
        f"`/ask`: top_k {ASK_TOP_K}, max_tokens {info.max_tokens}, greedy, distinct questions; "
        "tokens/s = completion tokens / wall time of the level; TTFT = time to the first "
        "`event: token` (embedding, retrieval and prefill included). The engine's ceiling: "
        "after Serve is shut down, vLLM's offline engine alone (`bench/engine_ceiling.py`) "
        "generates for the concurrency-8 prompts (rebuilt from the sources each answer got), at "
        "most 8 in flight, with the generator's engine settings: each answer to the length /ask "
        "generated for it (the same work: /ask ends answers at their sentence limit), and every "
        "answer to max_tokens. Every measured process runs at "
        "niceness 0 (Ray's workers too: `RAY_worker_niceness=0`)."
    )
    if info.rag_env:
        text += f" Experiment: our replicas got the env vars {info.rag_env}."
    return text


def payload(
    info: RunInfo, search: list[Level], ask: list[Level], ceiling: Ceiling | None
) -> tuple[dict[str, Any], list[Target]]:
    """The results JSON (title, intro, body, data) and the targets it reports."""
    targets = search_targets(search) if search else []
    body: list[Any] = []
    if search:
        body += ["### /search", "", search_table(search), ""]
        body += ["Ours / each baseline (req/s: higher is better; latency: lower is better):", ""]
        body += [ratio_table(search), ""]
        body += [t.line() for t in targets] + [""]
    if ask:
        targets.append(ask_target(ask, ceiling))
        ttft = find(ask, OURS_ASK, 1)
        body += ["### /ask", "", ask_table(ask), ""]
        if ceiling is not None:
            body += [
                f"- the engine alone, each answer as long as /ask's: {ceiling.equal.tokens} "
                f"tokens in {ceiling.equal.wall_s:.1f} s, **{ceiling.equal.tokens_per_s:.1f} "
                "tokens/s**",
                f"- the engine alone, every answer to max_tokens (reference): "
                f"{ceiling.full.tokens} tokens in {ceiling.full.wall_s:.1f} s, "
                f"{ceiling.full.tokens_per_s:.1f} tokens/s",
            ]
        body.append(targets[-1].line())
        if ttft is not None:
            body.append(f"- `/ask` TTFT p50 at concurrency 1: **{ttft.ttft_ms(50):.0f} ms**")
        body.append("")
        if info.ask_cpu is not None:
            body += ["CPU by process while /ask ran at concurrency 8:", "",
                     info.ask_cpu.table(), ""]  # fmt: skip
    if info.idle_cpu is not None:
        body += ["CPU by process with every server deployed and idle (the standing cost "
                 "that shares the cores with the engine):", "", info.idle_cpu.table(),
                 ""]  # fmt: skip
    body.append(_errors_line(search + ask))
    if info.replicas:
        running = ", ".join(f"{k} {v}" for k, v in sorted(info.replicas.items()))
        body.append(f"Replicas running at the end: {running}.")
    data = {
        "index": {"dir": info.index_dir, "version": info.version, "manifest": info.manifest},
        "settings": {
            "search_requests": info.search_requests,
            "max_tokens": info.max_tokens,
            "ingress_replicas": info.ingress_replicas,
            "rag_env": info.rag_env,
            "book_threads": info.book_threads,
        },
        "loads": info.loads,
        "quiet": info.quiet,
        "replicas": info.replicas,
        "search": [lv.summary() for lv in search],
        "ask": [lv.summary() for lv in ask],
        "engine_ceiling": None
        if ceiling is None
        else {"equal_work": ceiling.equal.summary(), "to_max_tokens": ceiling.full.summary()},
        "ask_cpu": None if info.ask_cpu is None else asdict(info.ask_cpu),
        "idle_cpu": None if info.idle_cpu is None else asdict(info.idle_cpu),
        "targets": [asdict(t) for t in targets],
    }
    return {"title": TITLE, "intro": intro(info), "body": body, "data": data}, targets
