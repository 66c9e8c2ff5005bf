"""Serving load: the running service over loopback against the book's designs, in one run.

    python bench/serve_load.py [--index-dir DIR] [--quick] [--skip-ask] [--ingress-replicas N]
        [--wait-quiet MINUTES] [--book-defaults] [--transformers-loop]

Starts a local Ray and deploys, side by side in one Serve instance (`deployments.launch`):
  * our service ("rag", route /), from serve_config.yaml as `serve_index.py` deploys it, pinned
    to one index version: Ingress (API + query embedding + retrieval) -> vLLM generator;
  * the book's single deployment ("book", route /book): one replica that loads the model and
    the FAISS index itself and embeds one query per request (bench/baselines.py), with
    max_ongoing_requests 100 (and with --book-defaults, "book-defaults" with Serve's defaults);
and, as a uvicorn subprocess on another port, a single-process FastAPI + FAISS +
sentence-transformers server over the same index (the book's design without Ray).

`/search` runs at concurrency 1, 8 and 32 against every server (levels interleaved, so drift
in the machine's load hits every system alike). `/ask/stream` runs at concurrency 1 and 8 (time
to first token, tokens/s; the CPU each process took during concurrency 8). After Serve is shut
down, vLLM's offline engine alone generates for the concurrency-8 prompts
(bench/engine_ceiling.py), each answer to the length /ask generated: /ask's tokens/s is
reported as a share of that ceiling (and of the engine generating every answer to max_tokens).
With --transformers-loop, the same prompts also go through a plain transformers `generate`
loop. Figures go to stdout, bench/results/serve_load.json and the "Serving load" section of
docs/benchmarks.md (bench/serve_report.py).

The index: --index-dir, else the docs.ray.io index of bench/build_throughput.py
(/tmp/rag-bench/index) when published, else one built here over the project's docs/.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

try:
    from bench import common
except ModuleNotFoundError:  # `python bench/x.py` puts only bench/ on sys.path
    import common  # type: ignore[no-redef]

from bench import cpu_usage
from bench import serve_report as report
from bench import serve_setup as setup
from bench.ask_ceiling import after_serve
from bench.cpu_usage import CpuUse
from bench.engine_ceiling import Ceiling
from bench.loadgen import Level, ask_call, measure, search_call
from bench.report import render
from ragcore.index_format import read_manifest

IDLE_S = 10.0  # how long the standing CPU cost of the deployed servers is measured


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags; --quick shrinks the run to a smoke test that writes nothing."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index-dir", type=Path, default=None)
    p.add_argument("--quick", action="store_true", help="smoke test: few requests, no report")
    p.add_argument("--search-requests", type=int, default=200, help="per system and level")
    p.add_argument("--search-levels", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument(
        "--ask-requests",
        type=int,
        nargs=2,
        default=[4, 32],
        metavar=("AT_1", "AT_8"),
        help="/ask requests at concurrency 1 and 8",
    )
    p.add_argument(
        "--max-tokens",
        type=int,
        default=0,
        help="answer length cap (0: the service's configured max_tokens)",
    )
    p.add_argument("--skip-ask", action="store_true", help="search only")
    p.add_argument("--skip-search", action="store_true", help="/ask only")
    p.add_argument(
        "--ingress-replicas",
        type=int,
        default=None,
        metavar="N",
        help="fixed Ingress replica count (args.ingress.num_replicas)",
    )
    p.add_argument(
        "--book-threads",
        type=int,
        default=0,
        help="torch threads of the book deployment (0: Ray's default)",
    )
    p.add_argument(
        "--book-defaults",
        action="store_true",
        help="also run the book's deployment with Serve's default options",
    )
    p.add_argument(
        "--transformers-loop",
        action="store_true",
        help="also run the /ask prompts through a plain transformers loop",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="MINUTES",
        help="first wait up to this long for 1-min load < --quiet-load",
    )
    p.add_argument("--quiet-load", type=float, default=1.5)
    p.add_argument(
        "--rag-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra env var for our app's replicas (experiments; reported)",
    )
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--tenants", action="store_true", help="instead: auth + limits overhead "
                   "and an abusive tenant's effect (bench/tenant_load.py)")  # fmt: skip
    args = p.parse_args(argv)
    args.rag_env = dict(item.split("=", 1) for item in args.rag_env)
    if args.quick:
        args.search_requests, args.search_levels = 30, [1, 8]
        args.ask_requests, args.max_tokens, args.no_write = [2, 8], 32, True
    return args


# --- what is measured ----------------------------------------------------------------------


async def run_search(
    bases: dict[str, str], questions: list[str], levels: list[int], total: int
) -> list[Level]:
    """Every level against every system, interleaved."""
    results: list[Level] = []
    for number, concurrency in enumerate(levels):
        for system, url in bases.items():
            call = search_call(url, questions)
            warmup = max(2 * concurrency, 10)
            level = await measure(
                system,
                call,
                concurrency,
                warmup,
                total,
                limit_s=180,
                timeout_s=60,
                first=number * total,
            )
            results.append(level)
            report.print_levels([level])
    return results


async def run_ask(
    url: str, questions: list[str], counts: list[int], max_tokens: int
) -> tuple[list[Level], CpuUse]:
    """Warm-up, then concurrency 1 and 8 over distinct questions (so no prompt repeats); the
    CPU each process used during the concurrency-8 level."""
    call = ask_call(url, questions, max_tokens)
    levels = []
    first = 0
    for concurrency, total in zip((1, 8), counts, strict=True):
        warmup = 2 if concurrency == 1 else 0
        before, started = cpu_usage.snapshot(), time.perf_counter()  # kept for concurrency 8
        level = await measure(
            report.OURS_ASK,
            call,
            concurrency,
            warmup,
            total,
            limit_s=420,
            timeout_s=300,
            first=first,
        )
        cpu = cpu_usage.between(before, cpu_usage.snapshot(), time.perf_counter() - started)
        levels.append(level)
        report.print_levels([level], ask=True)
        first += warmup + total
    print(*(f"cpu {name}: {secs:.1f} s ({share:.0%})" for name, secs, share in cpu.shares()),
          sep="\n", flush=True)  # fmt: skip
    return levels, cpu


def main(argv: list[str] | None = None) -> int:
    """Deploy, measure /search and /ask, shut down, measure the engine alone, report."""
    args = parse_args(argv)
    if args.tenants:
        from bench import tenant_load

        return tenant_load.run(args)
    index_dir, version = common.resolve_index(args.index_dir)
    questions = common.load_questions()
    quiet = common.wait_quiet(args.quiet_load, args.wait_quiet) if args.wait_quiet > 0 else True
    loads = {"before": common.loadavg()}
    print(f"index {index_dir} version {version}; {len(questions)} questions; load {loads}")
    # Without API keys, like the servers it is compared with (--tenants measures what they add).
    config = setup.serve_config(index_dir, version, common.free_port(), args.ingress_replicas,
                                args.rag_env, app_args={"auth": {"enabled": False}})  # fmt: skip
    service = setup.our_settings(config)
    config["applications"] += setup.book_apps(index_dir, version, service.embedding_model,
                                              args.book_threads, args.book_defaults)  # fmt: skip
    args.max_tokens = args.max_tokens or service.generator.max_tokens
    started = time.perf_counter()
    plain = setup.plain_server(index_dir, version, service.embedding_model, common.free_port())
    with plain as plain_base, setup.serve_apps(config) as base:
        print(f"all servers ready after {time.perf_counter() - started:.0f}s", flush=True)
        idle = cpu_usage.while_idle(IDLE_S)
        bases = {report.OURS: f"{base}/search", report.PLAIN: f"{plain_base}/search",
                 report.BOOK: f"{base}/book/search"}  # fmt: skip
        if args.book_defaults:
            bases[report.BOOK_DEFAULTS] = f"{base}/book-defaults/search"
        search: list[Level] = []
        if not args.skip_search:
            search = asyncio.run(run_search(bases, questions, args.search_levels,
                                            args.search_requests))  # fmt: skip
        ask: list[Level] = []
        cpu = None
        if not args.skip_ask:
            url = f"{base}/ask/stream"
            ask, cpu = asyncio.run(run_ask(url, questions, args.ask_requests, args.max_tokens))
        replicas = setup.replica_counts()
    loads["after serve"] = common.loadavg()
    ceiling = after_serve(ask, service, args.max_tokens, args.transformers_loop)
    loads["end"] = common.loadavg()
    info = report.RunInfo(
        index_dir=index_dir,
        version=version,
        manifest=read_manifest(index_dir, version),
        service=service,
        search_requests=args.search_requests,
        max_tokens=args.max_tokens,
        book_threads=args.book_threads,
        ingress_replicas=args.ingress_replicas,
        book_defaults=args.book_defaults,
        rag_env=args.rag_env,
        quiet=quiet,
        loads=loads,
        replicas=replicas,
        ask_cpu=cpu,
        idle_cpu=idle,
    )
    return finish(args, info, search, ask, ceiling)


def finish(
    args: argparse.Namespace,
    info: report.RunInfo,
    search: list[Level],
    ask: list[Level],
    ceiling: Ceiling | None,
) -> int:
    """Print the section, write the results unless --no-write; 1 when any request failed."""
    payload, targets = report.payload(info, search, ask, ceiling)
    _, intro, lines = render(payload)
    print(intro, *lines, sep="\n")
    if not args.no_write:
        common.write_results("serve_load", payload)
    print("targets:", *(f"- {t.what}: {t.verdict}" for t in targets), sep="\n")
    return 1 if any(lv.failed for lv in search + ask) else 0


if __name__ == "__main__":
    sys.exit(main())
