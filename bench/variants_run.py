"""Canary rollback and shadow overhead on the running service.

    python -m bench.variants_run [--index-dir DIR] [--questions 24] [--parts shadow canary]

Runs of `serve_index.py` from serve_config.yaml (auth off, answer cache off so every /ask
generates, short answers), over the Ray docs index (or the guide/ index):
1. Shadow overhead: `--questions` dev questions at concurrency 1 and then 4 with no shadow
   variant, then with a shadow variant sampling every request (shadow_sample 1.0, its own
   retrieval: top_k 3) under the default policy (idle time only) and beside one live request.
   The live p50/p95 of the runs are compared, and the comparisons each policy completed.
2. Canary: variants main 80, `err` 10 (half its generations fail) and `slow` 10 (3 s added to
   each answer). Distinct users at concurrency 4 until both are rolled back (or the
   questions run out): when each was rolled back, how many requests it served and failed first.
Writes bench/results/variants_run.json and its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
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
    resolve_index,
    write_results,
)
from deployments.launch import load_serve_config, serve_index_process
from ragcore.variants.shadow import read_log

CONFIG = Path(__file__).resolve().parent.parent / "serve_config.yaml"
IDLE = "shadow, idle time only (default)"
BESIDE = "shadow, beside 1 live request"
RESULTS = Path(__file__).resolve().parent / "results" / "variants_run.json"
SHADOW = {"items": [{"name": "main"}, {"name": "next", "role": "shadow", "shadow_sample": 1.0,
                                        "retrieval": {"top_k": 3}}]}  # fmt: skip
CANARY = {"items": [{"name": "main", "weight": 80},
                    {"name": "err", "weight": 10, "role": "canary", "fault": {"error_rate": 0.5}},
                    {"name": "slow", "weight": 10, "role": "canary",
                     "fault": {"added_latency_ms": 3000}}],
          "canary": {"min_requests": 10, "window_s": 120}}  # fmt: skip


def _config(folder: Path, index_dir: Path, name: str, variants: dict[str, Any] | None) -> Path:
    overrides: dict[str, Any] = {"auth": {"enabled": False, "state_dir": str(folder / name)},
                                 "cache": {"enabled": False},
                                 "generator": {"max_tokens": 48}}  # fmt: skip
    if variants is not None:
        overrides["variants"] = variants
    path = folder / f"serve-{name}.yaml"
    path.write_text(yaml.safe_dump(load_serve_config(CONFIG, index_dir, None, overrides)))
    return path


async def _asks(url: str, questions: list[str], concurrency: int,
                stop: Any = None) -> list[dict[str, Any]]:  # fmt: skip
    """POST /ask per question (a user each), `concurrency` at a time, until `stop()`."""
    gate = asyncio.Semaphore(concurrency)
    rows: list[dict[str, Any]] = []

    async def one(client: httpx.AsyncClient, i: int, question: str) -> None:
        async with gate:
            if stop is not None and await stop(client):
                return
            start = time.perf_counter()
            r = await client.post(f"{url}/ask", json={"question": question},
                                  headers={"X-User-ID": f"user-{i}"})  # fmt: skip
            body = dict(r.json()) if r.status_code == 200 else {"error": r.status_code}
            row = {**body, "seconds": time.perf_counter() - start, "at": time.time()}
            rows.extend(figures_only([row]))

    async with httpx.AsyncClient(timeout=600) as client:
        await asyncio.gather(*(one(client, i, q) for i, q in enumerate(questions)))
    return rows


def _latency(rows: list[dict[str, Any]], q: float) -> float:
    return round(pct([r["seconds"] for r in rows if "error" not in r], q))


SHADOW_RUNS: list[tuple[str, dict[str, Any] | None]] = [
    ("no shadow", None),
    (IDLE, SHADOW),
    (BESIDE, {**SHADOW, "shadow_max_live_in_flight": 1}),
]


def shadow_overhead(index_dir: Path, folder: Path, questions: list[str]) -> dict[str, Any]:
    """Live latency without a shadow variant and with one under each policy, at concurrency
    1 and 4."""
    runs: dict[str, Any] = {}
    for name, variants in SHADOW_RUNS:
        slug = "".join(ch if ch.isalnum() else "-" for ch in name)
        config = _config(folder, index_dir, slug, variants)
        with serve_index_process(index_dir, free_port(), extra_args=["--config", str(config)]
                                 ) as url:  # fmt: skip
            asyncio.run(_asks(url, questions[:4], 4))  # warm-up
            runs[name] = {str(c): asyncio.run(_asks(url, questions, c)) for c in (1, 4)}
            time.sleep(5)  # the last copies finish
        # The figures only: the dev questions and answers stay out of the results file.
        private = ("question", "live_answer", "shadow_answer")
        runs[name]["comparisons"] = [{k: v for k, v in c.items() if k not in private}
                                     for c in read_log(folder / slug / "shadow.jsonl")]  # fmt: skip
    return runs


def canary(index_dir: Path, folder: Path, questions: list[str]) -> dict[str, Any]:
    """Send distinct users until both canaries are rolled back; the state each step."""
    config = _config(folder, index_dir, "canary", CANARY)
    rollbacks: dict[str, float] = {}

    async def both_rolled_back(client: httpx.AsyncClient) -> bool:
        state = (await client.get(f"{url}/admin/variants")).json()
        for v in state["variants"]:
            if v["rolled_back"] and v["name"] not in rollbacks:
                rollbacks[v["name"]] = time.time()
        return len(rollbacks) == 2

    with serve_index_process(index_dir, free_port(), extra_args=["--config", str(config)]) as url:
        asyncio.run(_asks(url, questions[:4], 4))  # warm-up (all users of these go anywhere)
        started = time.time()
        rows = asyncio.run(_asks(url, questions[4:], 4, both_rolled_back))
        state = httpx.get(f"{url}/admin/variants", timeout=30).json()
    return {"rows": rows, "rollbacks": rollbacks, "started": started, "state": state}


def _canary_rows(run: dict[str, Any]) -> list[list[Any]]:
    rows = []
    reasons = {v["name"]: v["rolled_back"] for v in run["state"]["variants"]}
    for name in ("err", "slow"):
        served = [r for r in run["rows"] if r.get("variant", "").startswith(name + "@")]
        at = run["rollbacks"].get(name)
        before = [r for r in served if at is None or r["at"] <= at]
        failed = [r for r in before if str(r.get("answer_path", "")).startswith("fallback")]
        after = [r for r in served if at is not None and r["at"] > at + 2]
        rows.append([name, reasons.get(name) or "not rolled back", len(before), len(failed),
                     round(at - run["started"], 1) if at else None, len(after)])  # fmt: skip
    return rows


def report(shadow: dict[str, Any], drill: dict[str, Any], intro: str, questions: int
           ) -> dict[str, Any]:  # fmt: skip
    """The results file's payload (title, body, data) from the runs' data."""
    shadow_rows = [[name, c, len(run[str(c)]), _latency(run[str(c)], 50),
                    _latency(run[str(c)], 95)]
                   for name, run in shadow.items() for c in (1, 4)]  # fmt: skip
    base = shadow["no shadow"]
    costs, coverage = [], []
    for name in (IDLE, BESIDE):
        run = shadow[name]
        compared = run["comparisons"]
        overlap = [c["overlap_at_k"] for c in compared]
        similarity = [c["answer_similarity"] for c in compared
                      if c["answer_similarity"] is not None]  # fmt: skip
        costs.append([name] + [f"{100 * (_latency(run[c], 50) / _latency(base[c], 50) - 1):+.0f}%"
                               for c in ("1", "4")])  # fmt: skip
        medians = [round(statistics.median(v), 2) if v else None for v in (overlap, similarity)]
        coverage.append([name, len(compared), 2 * questions, *medians])
    return {
        "title": "Shadow overhead and canary rollback (issue 12)",
        "intro": intro,
        "body": [
            "Live /ask latency without a shadow variant and with one that copies every request "
            f"({questions} dev questions per concurrency):",
            "",
            {"columns": ["run", "concurrency", "requests", "p50 ms", "p95 ms"],
             "align": "lrrrr", "rows": shadow_rows},
            "",
            "Live p50 against no shadow, and how many requests the shadow compared:",
            "",
            {"columns": ["policy", "p50 change, c=1", "p50 change, c=4"], "align": "lrr",
             "rows": costs},
            "",
            {"columns": ["policy", "comparisons", "live requests", "median overlap@k",
                         "median answer similarity"], "align": "lrrrr", "rows": coverage},
            "",
            "Target (shadow traffic does not slow the live path): NOT met at shadow_sample "
            "1.0. The default policy starts a copy only while its Ingress replica has no other "
            "live request and cancels it when one arrives, but the check is per replica while "
            "the two Ingress replicas share one engine: the next user's request lands on the "
            "other replica and the copy keeps generating beside it, sharing this 2-core CPU. "
            "A cancelled copy has also spent its search and prefill. Letting copies run beside "
            "one live request (`shadow_max_live_in_flight: 1`) compares more requests at a "
            "similar cost. A fix needs the engine's own load (or vLLM's priority scheduling) "
            "in the decision; not built. `shadow_sample` bounds the cost in proportion.",
            "",
            "Canary drill: main 80, `err` 10 (half its generations fail), `slow` 10 (3 s added "
            "to each answer); canary min_requests 10, window 120 s; two Ingress replicas:",
            "",
            {"columns": ["canary", "rolled back for", "requests before", "failed before",
                         "seconds to rollback", "served after (+2 s)"],
             "align": "lrrrrr", "rows": _canary_rows(drill)},
            "",
            "Each replica judges a canary on its own window, so `min_requests` counts per "
            "replica: with two replicas a canary needs about twice that many requests before "
            "any replica can roll it back (the rollback itself is then shared within a second, "
            "as the last column shows). A canary that fails half its generations served all "
            "its requests before the drill's questions ran out without either replica reaching "
            "10; `slow` was rolled back on its p95.",
        ],
        "data": {"shadow": shadow, "canary": drill},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=None)
    parser.add_argument("--questions", type=int, default=24)
    parser.add_argument("--render-only", action="store_true",
                        help="re-render the last results file (no runs)")  # fmt: skip
    parser.add_argument("--parts", nargs="+", choices=("shadow", "canary"),
                        default=["shadow", "canary"],
                        help="what to run (the rest: from the last results file)")  # fmt: skip
    args = parser.parse_args()
    if args.render_only:
        last = json.loads(RESULTS.read_text(encoding="utf-8"))
        data = last["data"]
        questions = len(data["shadow"]["no shadow"]["1"])
        write_results("variants_run", report(data["shadow"], data["canary"], last["intro"],
                                             questions))  # fmt: skip
        return
    index_dir, version = resolve_index(args.index_dir)
    questions = list(dict.fromkeys(load_questions()))
    before = loadavg()
    last = json.loads(RESULTS.read_text(encoding="utf-8"))["data"] if RESULTS.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shadow = (shadow_overhead(index_dir, folder, questions[8 : 8 + args.questions])
                  if "shadow" in args.parts else last["shadow"])  # fmt: skip
        drill = (canary(index_dir, folder, questions[40:]) if "canary" in args.parts
                 else last["canary"])  # fmt: skip
    intro = (f"`python -m bench.variants_run`: `serve_index.py` from serve_config.yaml (auth "
             f"off, answer cache off, max_tokens 48) on `{index_dir}` version {version}, load "
             f"average {before[0]:.2f} before, one client over loopback, a distinct X-User-ID "
             "per request.")  # fmt: skip
    write_results("variants_run", report(shadow, drill, intro, args.questions))


if __name__ == "__main__":
    main()
