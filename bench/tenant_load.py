"""Tenants under load (issue 10): what API keys and limits cost per request, and whether one
abusive tenant slows the others. Run as `python bench/serve_load.py --tenants`.

In one Serve instance, two copies of our app over the same index, from serve_config.yaml:
"rag" with auth on (the embedded store: one named Ray actor, SQLite under a scratch state
dir) and "open" with auth off, both search-only (the generator is not on this path and would
take a core). /search runs against both, interleaved, at concurrency 1 and 32: the difference
of their latencies is the overhead of auth + limits. Then, on "rag": a well-behaved tenant at
concurrency 4, alone and again beside an abusive tenant sending 10x its request limit.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import yaml

from bench import common
from bench import serve_setup as setup
from bench.loadgen import Level, measure, search_call
from bench.report import table
from deployments.launch import create_key

WORK = setup.WORK_DIR / "tenants"
ABUSIVE_RPM = 60
ABUSE_FACTOR = 10
GOOD_CONCURRENCY = 4
TITLE = "Tenants: auth and limit overhead, and an abusive neighbour (issue 10)"


def tenant_apps(index_dir: Path, version: str, port: int) -> dict[str, Any]:
    """serve_config.yaml's app twice, search-only: "rag" with auth, "open" without."""
    state = WORK / f"state-{int(time.time())}"
    overrides = {"generator": {"enabled": False}, "auth": {"state_dir": str(state)}}
    config = setup.serve_config(index_dir, version, port, app_args=overrides)
    rag = config["applications"][0]
    open_app = yaml.safe_load(yaml.safe_dump(rag))
    open_app.update(name="open", route_prefix="/open")
    open_app["args"]["auth"] = {"enabled": False}
    config["applications"].append(open_app)
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "keys.yaml").write_text(yaml.safe_dump({"applications": [rag]}))
    return config


def keys() -> tuple[str, str]:
    """A well-behaved tenant's key (limits far above the load) and an abusive one's."""
    config = WORK / "keys.yaml"
    roomy = ["--rpm", "1000000", "--tokens-per-minute", "1000000000"]
    good = create_key("bench-good", tenant_limits=roomy, config=config)
    abusive = create_key("bench-abusive", tenant_limits=["--rpm", str(ABUSIVE_RPM)],
                         config=config)  # fmt: skip
    return good, abusive


async def overhead(base: str, key: str, questions: list[str], total: int) -> list[Level]:
    """/search with and without auth, interleaved, at concurrency 1 and 32, two rounds each."""
    auth = {"Authorization": f"Bearer {key}"}
    systems = {"auth + limits": (f"{base}/search", auth), "no auth": (f"{base}/open/search", None)}
    levels = []
    first = 0
    for concurrency in (1, 32):
        for _round in range(2):
            for name, (url, headers) in systems.items():
                call = search_call(url, questions, headers)
                levels.append(await measure(name, call, concurrency, max(10, concurrency),
                                            total, 300, 60, first=first))  # fmt: skip
                first += total + max(10, concurrency)
    return levels


async def abuse(base: str, key: str, questions: list[str], stop: asyncio.Event) -> list[int]:
    """Send ABUSE_FACTOR x the abusive tenant's limit until `stop`; the status codes."""
    import httpx

    codes: list[int] = []
    interval = 60.0 / (ABUSIVE_RPM * ABUSE_FACTOR)
    async with httpx.AsyncClient(timeout=60) as client:
        tasks = []

        headers = {"Authorization": f"Bearer {key}"}

        async def one(i: int) -> None:
            params: dict[str, str | int] = {"query": questions[i % len(questions)], "k": 5}
            response = await client.get(f"{base}/search", headers=headers, params=params)
            codes.append(response.status_code)

        i = 0
        while not stop.is_set():
            tasks.append(asyncio.create_task(one(i)))
            i += 1
            await asyncio.sleep(interval)
        await asyncio.gather(*tasks, return_exceptions=True)
    return codes


async def isolation(
    base: str, good: str, abusive: str, questions: list[str], total: int
) -> tuple[list[Level], list[int]]:
    """The good tenant alone, beside the abusive one, and alone again (the solo baseline is
    both solo runs together, so drift during the run does not favour either side)."""
    call = search_call(f"{base}/search", questions, {"Authorization": f"Bearer {good}"})
    solo = await measure("good tenant alone", call, GOOD_CONCURRENCY, 20, total, 300, 60)
    stop = asyncio.Event()
    flood = asyncio.create_task(abuse(base, abusive, questions, stop))
    # At 10x its rate the abusive tenant spends its minute's requests in 6 s; from then on it
    # only gets 429s, as it would in a sustained attack.
    await asyncio.sleep(60.0 / ABUSE_FACTOR + 2)
    beside = await measure("good tenant, abusive neighbour", call, GOOD_CONCURRENCY, 0, total,
                           300, 60, first=total)  # fmt: skip
    stop.set()
    codes = await flood
    again = await measure("good tenant alone (again)", call, GOOD_CONCURRENCY, 0, total, 300,
                          60, first=2 * total)  # fmt: skip
    return [solo, beside, again], codes


def _pooled(levels: list[Level], name: str, concurrency: int) -> dict[str, float]:
    samples = [s.latency_s for lv in levels if lv.system == name and lv.concurrency == concurrency
               for s in lv.ok]  # fmt: skip
    return {"p50": common.pct(samples, 50), "p99": common.pct(samples, 99), "n": len(samples),
            "failed": sum(lv.failed for lv in levels if lv.system == name
                          and lv.concurrency == concurrency)}  # fmt: skip


def payload(over: list[Level], iso: list[Level], codes: list[int], total: int) -> dict[str, Any]:
    """The results JSON, with its docs/benchmarks.md section."""
    rows, figures = [], {}
    for concurrency in (1, 32):
        auth, plain = (_pooled(over, n, concurrency) for n in ("auth + limits", "no auth"))
        figures[f"c{concurrency}"] = {"auth": auth, "open": plain}
        rows.append([concurrency, plain["p50"], auth["p50"], auth["p50"] - plain["p50"],
                     plain["p99"], auth["p99"], auth["p99"] - plain["p99"]])  # fmt: skip
    solo = [s.latency_s for lv in (iso[0], iso[2]) for s in lv.ok]
    beside = iso[1]
    iso_rows = [[lv.system, lv.latency_ms(50), lv.latency_ms(99), lv.rps, lv.failed] for lv in iso]
    iso_rows.append(["good tenant alone (both runs)", common.pct(solo, 50), common.pct(solo, 99),
                     None, None])  # fmt: skip
    ratio = beside.latency_ms(99) / common.pct(solo, 99)
    refused = sum(c == 429 for c in codes)
    p50_overhead = rows[0][3]
    overhead_columns = ["concurrency", "p50 no auth", "p50 auth", "p50 overhead", "p99 no auth",
                        "p99 auth", "p99 overhead"]  # fmt: skip
    body = [
        f"/search over the same index, {total} requests per system, level and round (two "
        "rounds, interleaved). Overhead = with auth minus without, in ms.",
        "",
        table(overhead_columns, rows, "rrrrrrr", [None] + [".2f"] * 6),
        "",
        f"Isolation: a well-behaved tenant at concurrency {GOOD_CONCURRENCY}; the abusive "
        f"tenant's limit is {ABUSIVE_RPM} requests/min and it sent {len(codes)} requests at "
        f"{ABUSE_FACTOR}x that rate ({refused} got 429). The ratio compares the neighbour "
        "run's p99 with the p99 of both solo runs pooled.",
        "",
        table(
            ["run", "p50 ms", "p99 ms", "req/s", "failed"],
            iso_rows,
            "lrrrr",
            [None, ".1f", ".1f", ".1f", None],
        ),
        "",
        f"Targets: overhead under 1 ms at p50 (c=1: {p50_overhead:.2f} ms, "
        f"{'met' if p50_overhead < 1 else 'not met'}); the well-behaved tenant's p99 within "
        f"1.2x of its solo p99 ({ratio:.2f}x, {'met' if ratio <= 1.2 else 'not met'}).",
    ]
    return {"title": TITLE, "intro": "`python bench/serve_load.py --tenants`.",
            "body": body, "overhead": figures, "isolation": [lv.summary() for lv in iso],
            "abusive_codes": {str(c): codes.count(c) for c in set(codes)},
            "p99_ratio": ratio}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Deploy both apps, measure, write bench/results/tenant_load.json and the docs section."""
    index_dir, version = common.resolve_index(args.index_dir)
    questions = common.load_questions()
    total = 60 if args.quick else args.search_requests
    iso_total = 60 if args.quick else 3 * args.search_requests  # ~20 s beside the abuser
    config = tenant_apps(index_dir, version, common.free_port())
    with setup.serve_apps(config) as base:
        good, abusive = keys()
        over = asyncio.run(overhead(base, good, questions, total))
        iso, codes = asyncio.run(isolation(base, good, abusive, questions, iso_total))
    result = payload(over, iso, codes, total)
    print(*[b if isinstance(b, str) else b["rows"] for b in result["body"]], sep="\n")
    if not args.no_write:
        common.write_results("tenant_load", result)
    return 1 if any(lv.failed for lv in over + iso) else 0
