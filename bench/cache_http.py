"""The answer cache over HTTP on the running service: what a miss costs for the lookups, and
the latency of a hit against a generated answer.

    python -m bench.cache_http [--index-dir DIR] [--questions 30] [--parts misses hits]

Three runs of `serve_index.py` from serve_config.yaml, auth off, over the Ray docs index (or
the guide/ index):
1. generator off, cache off; 2. generator off, cache on: the 213 dev questions, each once
   (every lookup misses: with no generator nothing is stored), at concurrency 1 and 8. The
   difference is what the exact and semantic lookups add to a miss.
2. generator on, cache on: `--questions` distinct questions (misses, generated), then the same
   again (exact hits), then each lower-cased without its question mark and with "please"
   (semantic hits), at concurrency 1.
Writes bench/results/cache_http.json and its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.common import (
    figures_only,
    free_port,
    load_questions,
    loadavg,
    pct,
    read_results,
    resolve_index,
    write_results,
)
from deployments.launch import load_serve_config, serve_index_process
from utils.ray_runtime import ha_proxy_ingress

CONFIG = Path(__file__).resolve().parent.parent / "serve_config.yaml"


def _config(folder: Path, index_dir: Path, cache: bool) -> Path:
    config = load_serve_config(CONFIG, index_dir, None, {"auth": {"enabled": False},
                                                          "cache": {"enabled": cache}})  # fmt: skip
    path = folder / f"serve-cache-{cache}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def _asks(url: str, questions: list[str], concurrency: int) -> list[dict[str, Any]]:
    """POST /ask for each question, `concurrency` at a time; the bodies with the latency."""
    gate = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()

    async def one(client: httpx.AsyncClient, question: str) -> dict[str, Any]:
        async with gate:
            start = loop.time()
            r = await client.post(f"{url}/ask", json={"question": question})
            body = dict(r.json()) if r.status_code == 200 else {"error": r.status_code}
            return figures_only([{**body, "seconds": loop.time() - start}])[0]

    async with httpx.AsyncClient(timeout=600) as client:
        return list(await asyncio.gather(*(one(client, q) for q in questions)))


def _median(rows: list[dict[str, Any]], field: str) -> float | None:
    values = [float(r[field]) for r in rows if r.get(field) is not None]
    return round(statistics.median(values), 1) if values else None


def _p50(rows: list[dict[str, Any]]) -> float:
    return round(pct([r["seconds"] for r in rows], 50), 1)


def _run(index_dir: Path, folder: Path, cache: bool, generator: bool, warm_up: list[str],
         phases: list[tuple[str, list[str], int]]) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """One service run: `warm_up` questions (not timed, not asked again), then each phase."""
    args = ["--config", str(_config(folder, index_dir, cache))]
    args += [] if generator else ["--no-generator"]
    with serve_index_process(index_dir, free_port(), extra_args=args) as url:
        asyncio.run(_asks(url, warm_up, 8))
        return {name: asyncio.run(_asks(url, qs, c)) for name, qs, c in phases}


def _verdict(hits: list[dict[str, Any]]) -> str:
    """met or NOT met (under 20 ms at p50), or not measured."""
    if not hits:
        return "not measured"
    return "met" if _p50(hits) < 20 else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=None)
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--parts", nargs="+", choices=("misses", "hits"),
                        default=["misses", "hits"],
                        help="what to run (the rest: from the last results file)")  # fmt: skip
    args = parser.parse_args()
    index_dir, version = resolve_index(args.index_dir)
    questions = list(dict.fromkeys(load_questions()))
    before = loadavg()
    last = read_results("cache_http").get("data", {})
    warm_up, rest = questions[:8], questions[8:]
    sweep = [("c1", rest, 1), ("c8", rest, 8)]
    few = rest[: args.questions]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "misses" in args.parts:
            off = _run(index_dir, folder, False, False, warm_up, sweep)
            on = _run(index_dir, folder, True, False, warm_up, sweep)
        else:
            off, on = last["misses_off"], last["misses_on"]
        paraphrases = [q.lower().rstrip("?. ") + " please" for q in few]
        phases = [("miss", few, 1), ("exact", few, 1), ("semantic", paraphrases, 1)]
        live = (_run(index_dir, folder, True, True, warm_up, phases) if "hits" in args.parts
                else last["live"])  # fmt: skip
    miss = [r for r in live["miss"] if r.get("answer_path") == "generator"]
    exact = [r for r in live["exact"] if r.get("cache") == "exact"]
    semantic = [r for r in live["semantic"] if r.get("cache") == "semantic"]
    rows = [[f"generator off, cache {name}", c, len(data[c]), _p50(data[c]),
             round(pct([r["seconds"] for r in data[c]], 95), 1)]
            for name, data in (("off", off), ("on", on)) for c in ("c1", "c8")]  # fmt: skip
    hit_rows = [[name, len(got), len(few), _p50(got) if got else None,
                 _median(got, "latency_ms")]
                for name, got in (("miss (generated)", miss), ("exact hit", exact),
                                  ("semantic hit", semantic))]  # fmt: skip
    saved = sum(int(r.get("tokens_saved") or 0) for r in exact + semantic)
    write_results("cache_http", {
        "title": "Answer cache over HTTP (issue 12)",
        "intro": f"`python -m bench.cache_http`: `serve_index.py` from serve_config.yaml with auth "
        f"off, on `{index_dir}` version {version}, one client over loopback (load average "
        f"{before[0]:.2f} before; 8 other questions warm each run up). Misses: "
        f"{len(rest)} dev questions once each with "
        "the generator off (so nothing is stored and every lookup misses), cache off then "
        f"on. Hits: {len(few)} questions generated (cache on), then asked again (exact), then "
        "lower-cased without the question mark and with \"please\" (semantic).",
        "body": [
            {"columns": ["run", "concurrency", "requests", "p50 ms", "p95 ms"],
             "align": "lrrrr", "rows": rows},
            "",
            {"columns": ["request", "counted", "sent", "p50 ms", "service p50 ms"],
             "align": "lrrrr",
             "rows": hit_rows},
            "",
            f"Generator tokens the hits saved: {saved:,}. Target: a hit under 20 ms at p50: "
            f"exact hits {_verdict(exact)}, semantic hits {_verdict(semantic)}. An exact hit "
            "pays the "
            "ingress, the PII check and one store call: it is looked up before the injection "
            "check, which a stored answer's question already passed under the same guards. A "
            "semantic hit runs every input guard (the injection head embeds the question) and "
            "embeds the question for the lookup. Service ms: the `latency_ms` the service "
            "reports, the rest is Serve's ingress "
            f"({'HAProxy' if ha_proxy_ingress() else 'Python proxy'}) and HTTP.",
        ],
        "data": {"misses_off": off, "misses_on": on, "live": live},
    })  # fmt: skip


if __name__ == "__main__":
    main()
