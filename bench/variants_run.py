"""Canary rollback and shadow overhead on the running service.

    python -m bench.variants_run [--index-dir DIR] [--questions 24] [--parts shadow canary]

Runs of `serve_index.py` from serve_config.yaml (auth off, answer cache off so every /ask
generates, short answers), over the Ray docs index (or the guide/ index):
1. Shadow overhead: `--questions` dev questions at concurrency 1, then 4 (closed loops: no
   idle time), then arriving at random (Poisson, a mean gap of OPEN_GAP_S: idle time between
   users), with no shadow variant, then with a shadow variant sampling every request
   (shadow_sample 1.0, its own retrieval: top_k 3) under the default policy (idle time only)
   and beside one live request, then with no shadow again (the run-to-run noise). The live
   p50/p95 of the runs are compared, and the comparisons each policy completed.
2. Canary: variants main 80, `err` 10 (half its generations fail) and `slow` 10 (3 s added to
   each answer). Distinct users at concurrency 4 until both are rolled back (or the
   questions run out): when each was rolled back, how many requests it served and failed first.
Writes bench/results/variants_run.json and its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
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
    read_results,
    resolve_index,
    write_results,
)
from deployments.launch import load_serve_config, serve_index_process
from ragcore.variants.shadow import read_log

CONFIG = Path(__file__).resolve().parent.parent / "serve_config.yaml"
IDLE = "shadow, idle time only (default)"
BESIDE = "shadow, beside 1 live request"
AGAIN = "no shadow, again"
OPEN_GAP_S = 3.0  # mean gap between open-loop arrivals (a live /ask takes about 1.5 s here)
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


async def _asks(url: str, questions: list[str], concurrency: int, stop: Any = None,
                starts: list[float] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """POST /ask per question (a user each), `concurrency` at a time, until `stop()`; or
    each at its time in `starts` (seconds from now), however many are in flight."""
    gate = asyncio.Semaphore(len(questions) if starts else concurrency)
    rows: list[dict[str, Any]] = []

    async def one(client: httpx.AsyncClient, i: int, question: str) -> None:
        if starts:
            await asyncio.sleep(starts[i])
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
    (AGAIN, None),
]
PHASES = ("1", "4", "open")


def _wait_for_copies(path: Path, quiet_s: float = 15.0, most_s: float = 120.0) -> None:
    """Until the shadow log has not grown for `quiet_s` (queued copies run once the app is
    idle), at most `most_s`."""
    deadline, last, since = time.monotonic() + most_s, -1, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        count = len(read_log(path))
        if count != last:
            last, since = count, time.monotonic()
        time.sleep(1)


def shadow_overhead(index_dir: Path, folder: Path, questions: list[str]) -> dict[str, Any]:
    """Live latency without a shadow variant and with one under each policy, at concurrency
    1 and 4."""
    runs: dict[str, Any] = {}
    rng = random.Random(7)
    starts = list(itertools.accumulate(rng.expovariate(1 / OPEN_GAP_S)
                                       for _ in questions))  # fmt: skip
    for name, variants in SHADOW_RUNS:
        slug = "".join(ch if ch.isalnum() else "-" for ch in name)
        config = _config(folder, index_dir, slug, variants)
        with serve_index_process(index_dir, free_port(), extra_args=["--config", str(config)]
                                 ) as url:  # fmt: skip
            asyncio.run(_asks(url, questions[:4], 4))  # warm-up
            runs[name] = {str(c): asyncio.run(_asks(url, questions, c)) for c in (1, 4)}
            runs[name]["open"] = asyncio.run(_asks(url, questions, 0, starts=starts))
            _wait_for_copies(folder / slug / "shadow.jsonl")
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


def _change(run: dict[str, Any], base: dict[str, Any], phase: str) -> float:
    return 100 * (_latency(run[phase], 50) / _latency(base[phase], 50) - 1)


def report(shadow: dict[str, Any], drill: dict[str, Any], intro: str, questions: int
           ) -> dict[str, Any]:  # fmt: skip
    """The results file's payload (title, body, data) from the runs' data."""
    label = {"1": "c=1", "4": "c=4", "open": "open loop"}
    shadow_rows = [[name, label[p], len(run[p]), _latency(run[p], 50), _latency(run[p], 95)]
                   for name, run in shadow.items() for p in PHASES]  # fmt: skip
    base = shadow["no shadow"]
    costs, coverage = [], []
    for name in (IDLE, BESIDE, AGAIN):
        costs.append([name] + [f"{_change(shadow[name], base, p):+.0f}%" for p in PHASES])
    for name in (IDLE, BESIDE):
        compared = shadow[name]["comparisons"]
        overlap = [c["overlap_at_k"] for c in compared]
        similarity = [c["answer_similarity"] for c in compared
                      if c["answer_similarity"] is not None]  # fmt: skip
        medians = [round(statistics.median(v), 2) if v else None for v in (overlap, similarity)]
        coverage.append([name, len(compared), len(PHASES) * questions, *medians])
    noise = max(abs(_change(shadow[AGAIN], base, p)) for p in PHASES)
    worst = max(_change(shadow[IDLE], base, p) for p in PHASES)
    verdict = "met" if worst <= max(noise, 2.0) else "NOT met"
    return {
        "title": "Shadow overhead and canary rollback (issue 12)",
        "intro": intro,
        "body": [
            "Live /ask latency without a shadow variant and with one that copies every request "
            f"({questions} dev questions per phase; closed loops at concurrency 1 and 4, then "
            f"open-loop arrivals with a mean gap of {OPEN_GAP_S:.0f} s):",
            "",
            {"columns": ["run", "phase", "requests", "p50 ms", "p95 ms"],
             "align": "llrrr", "rows": shadow_rows},
            "",
            "Live p50 against the first no-shadow run (the second one is the run-to-run noise), "
            "and how many requests each policy compared (copies queued during a busy phase run "
            "once the app is idle, so the count includes those that ran after the last phase):",
            "",
            {"columns": ["run", "p50 change, c=1", "p50 change, c=4", "p50 change, open loop"],
             "align": "lrrr", "rows": costs},
            "",
            {"columns": ["policy", "comparisons", "live requests", "median overlap@k",
                         "median answer similarity"], "align": "lrrrr", "rows": coverage},
            "",
            f"Target (shadow traffic does not slow the live path), for the default policy: "
            f"**{verdict}**: its worst p50 change is {worst:+.1f}% against a run-to-run noise "
            f"of {noise:.1f}%. The default starts a copy only when no Ingress replica has had a "
            "live request for `shadow_idle_s` (0.5 s): replicas publish their live traffic to "
            "the shared store (`LiveBoard`) every `shadow_poll_s` while shadows exist, and a "
            "copy is cancelled (then tried once more) as soon as any replica takes a live "
            "request again. A closed loop has no idle time, so it shadows nothing until it "
            "stops; open-loop arrivals leave gaps the copies use. Letting copies run beside one "
            "live request (`shadow_max_live_in_flight: 1`) compares more while users wait, at "
            "their cost, on this 2-core machine where the shadow shares the CPU.",
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
        last = read_results("variants_run")
        data = last["data"]
        questions = len(data["shadow"]["no shadow"]["1"])  # per phase
        write_results("variants_run", report(data["shadow"], data["canary"], last["intro"],
                                             questions))  # fmt: skip
        return
    index_dir, version = resolve_index(args.index_dir)
    questions = list(dict.fromkeys(load_questions()))
    before = loadavg()
    last = read_results("variants_run").get("data", {})
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
