"""Evaluate retrieval and answers: Ray-docs questions, BEIR datasets, or a running service.

python evaluate.py ray-qa --qa qa-dev.jsonl --index-dir index [--k 1 3 5 10] [--mode dense hybrid]
python evaluate.py beir --data scifact --split train [--index-dir /tmp/rag-eval/scifact]
python evaluate.py answers --qa qa.jsonl --url http://127.0.0.1:8000 [--judge-url URL]
python evaluate.py redteam --data ../shared/data/redteam/prompt-injections-dev.jsonl [--url URL]
python evaluate.py variants --qa qa.jsonl --url http://127.0.0.1:8000 [--variants main beta]

Each prints a table, then one JSON object with every metric as its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pydantic import ValidationError

from utils.errors import IndexNotReadyError, InputError
from utils.settings import RetrievalSettings, Settings

MODES = ["dense", "lexical", "hybrid"]
DEFAULT_BENIGN = Path(__file__).resolve().parent.parent / "shared/data/ray-docs/qa-dev.jsonl"
DEFAULT_EXTRACTION = Path(__file__).resolve().parent / "evaluation/data/extraction-attempts.jsonl"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Sub-command flags; retrieval settings not given fall back to defaults and RAG_* env."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    retrieval = argparse.ArgumentParser(add_help=False)
    retrieval.add_argument("--mode", nargs="+", choices=MODES, help="modes to score side by side")
    retrieval.add_argument("--candidates", type=int, help="candidates per leg before fusion")
    retrieval.add_argument("--rrf-k", type=int, help="RRF constant")
    retrieval.add_argument("--max-per-page", type=int, help="chunks kept per page (0: no cap)")
    retrieval.add_argument("--page-bonus", type=float, help="page-level score share (0: off)")

    qa = sub.add_parser("ray-qa", parents=[retrieval], help="page/section hit@k and MRR")
    qa.add_argument("--qa", type=Path, required=True, help="JSON lines {question, source}")
    qa.add_argument("--index-dir", type=Path, help="published index (default: settings)")
    qa.add_argument("--k", type=int, nargs="+", default=[1, 3, 5, 10], help="cut-offs")
    qa.add_argument("--write-misses", type=Path, help="write failed questions here (JSON lines)")

    beir = sub.add_parser("beir", parents=[retrieval], help="nDCG@10, recall, MRR on BEIR data")
    beir.add_argument("--data", type=Path, required=True, help="corpus.jsonl, queries.jsonl, qrels")
    beir.add_argument("--split", default="test", help="qrels/<split>.tsv")
    beir.add_argument("--index-dir", type=Path, help="work dir for the corpus index (reused)")
    beir.add_argument("--num-cpus", type=int, default=8, help="logical CPUs for a local Ray")
    beir.add_argument("--adapt", action="store_true", help="build the index as build_index.py "
                      "--adapt does: models trained on the corpus, scored with them")  # fmt: skip

    asking = argparse.ArgumentParser(add_help=False)
    asking.add_argument("--qa", type=Path, required=True, help="JSON lines {question, source?, "
                        "answerable?}")  # fmt: skip
    asking.add_argument("--url", required=True, help="service base URL or its /ask URL")
    asking.add_argument("--unanswerable", type=Path, help="extra questions it cannot answer")
    asking.add_argument("--top-k", type=int, default=5, help="top_k sent with each question")
    asking.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    asking.add_argument("--judge-url", help="OpenAI-compatible endpoint for LLM-as-judge")
    asking.add_argument("--judge-model", default="judge", help="model name sent to the judge")
    asking.add_argument("--concurrency", type=int, default=4, help="questions in flight at once")
    asking.add_argument("--max-tokens", type=int, default=256, help="max_tokens sent; an "
                        "answer that uses them all counts as a loop")  # fmt: skip
    asking.add_argument("--prompt-version", help="prompt_version sent (default: the server's)")
    asking.add_argument("--api-key", default=os.environ.get("RAG_API_KEY"),
                        help="API key (default: $RAG_API_KEY)")  # fmt: skip
    sub.add_parser("answers", parents=[asking], help="score a running service's /ask answers")
    var = sub.add_parser("variants", parents=[asking], help="every variant side by side: "
                         "retrieval and answers, each forced with X-Variant")  # fmt: skip
    var.add_argument("--variants", nargs="+", help="names (default: all, from /admin/variants: "
                     "an admin key; forcing needs the test or admin scope)")  # fmt: skip
    var.add_argument("--k", type=int, nargs="+", default=[1, 3, 5], help="retrieval cut-offs")
    var.set_defaults(top_k=None)  # each variant's own top_k, unless --top-k is given
    red = sub.add_parser("redteam", help="score the injection guard on a labelled set")
    red.add_argument("--data", type=Path, required=True, help='JSON lines {"text", "label"}')
    red.add_argument("--benign", type=Path, default=DEFAULT_BENIGN,
                     help="benign user questions (default: Ray-docs dev set)")  # fmt: skip
    red.add_argument("--extraction", type=Path, default=DEFAULT_EXTRACTION,
                     help="prompt-extraction attempts (leak rate with --url)")  # fmt: skip
    red.add_argument("--url", help="a running service: send every text to its /ask")
    red.add_argument("--api-key", default=os.environ.get("RAG_API_KEY"),
                     help="with --url, when auth is on (default: RAG_API_KEY)")  # fmt: skip
    red.add_argument("--max-tokens", type=int, default=64, help="with --url: answer length")
    red.add_argument("--concurrency", type=int, default=2, help="with --url: requests at once")
    return parser.parse_args(argv)


def _retrieval(args: argparse.Namespace, base: Settings) -> RetrievalSettings:
    """The service's retrieval settings with this run's flags laid over them."""
    flags = {
        "candidates": args.candidates,
        "rrf_k": args.rrf_k,
        "max_per_page": args.max_per_page,
        "page_bonus": args.page_bonus,
    }
    given = {k: v for k, v in flags.items() if v is not None}
    return RetrievalSettings(**{**base.service.retrieval.model_dump(), **given})


def _report(title: str, results: dict[str, dict[str, float]], extra: dict[str, Any]) -> None:
    from evaluation.metrics import format_table

    print(title)
    for line in format_table(results):
        print(line)
    print(json.dumps({**extra, "results": results}, sort_keys=True))


def run_ray_qa(args: argparse.Namespace, settings: Settings, retrieval: RetrievalSettings) -> None:
    """Score a question set against a built index, each mode on its own."""
    from evaluation.retrieval import Searcher, load_qa, score_qa
    from ragcore.index_format import load_index

    index_dir = args.index_dir or settings.service.index_dir
    published = load_index(index_dir)
    searcher = Searcher(published, retrieval, encoder=settings.service.query_encoder)
    items = load_qa(args.qa)
    modes = args.mode or [retrieval.mode]
    results: dict[str, dict[str, float]] = {}
    misses: dict[str, list[dict[str, Any]]] = {}
    for mode in modes:
        results[mode], misses[mode] = score_qa(searcher, items, sorted(args.k), mode)
    if args.write_misses:
        with args.write_misses.open("w", encoding="utf-8") as handle:
            for mode in modes:
                for miss in misses[mode]:
                    handle.write(json.dumps({"mode": mode, **miss}, ensure_ascii=False) + "\n")
    extra = {"task": "ray-qa", "index_version": published.version, "qa": str(args.qa)}
    _report(f"ray-qa: {args.qa} against index {published.version}", results, extra)


def run_beir(args: argparse.Namespace, settings: Settings, retrieval: RetrievalSettings) -> None:
    """Build (or reuse) an index of a BEIR corpus with the build pipeline, then score it."""
    from evaluation.retrieval import (
        Searcher,
        build_beir_index,
        current_beir_index,
        load_beir,
        score_beir,
    )
    from ragcore.index_format import load_index

    data = load_beir(args.data, args.split)
    work = args.index_dir or Path(tempfile.gettempdir()) / "rag-eval" / f"beir-{data.name}"
    adapt = settings.build.adapt.model_copy(update={"enabled": args.adapt})
    build = settings.build.model_copy(update={"index_dir": work, "sources": [str(args.data)],
                                              "adapt": adapt})  # fmt: skip
    path = current_beir_index(data, build)
    built = path is None
    if path is None:
        import ray

        from utils.ray_runtime import init_ray

        init_ray(build.ray_address, num_cpus=args.num_cpus)
        try:
            path = build_beir_index(data, build)
        finally:
            ray.shutdown()
    published = load_index(work, path.name)
    searcher = Searcher(published, retrieval, encoder=settings.service.query_encoder)
    modes = args.mode or [retrieval.mode]
    results = {mode: score_beir(searcher, data, mode) for mode in modes}
    extra = {"task": "beir", "dataset": data.name, "split": args.split, "built": built,
             "adapted": sorted(published.manifest.get("adapted") or {})}  # fmt: skip
    _report(f"beir: {data.name} ({args.split}), index {published.version}", results, extra)


def _answer_options(args: argparse.Namespace) -> dict[str, Any]:
    """What every /ask of this run sends and how its answers are judged."""
    return {"top_k": args.top_k, "judge_url": args.judge_url, "judge_model": args.judge_model,
            "max_tokens": args.max_tokens, "prompt_version": args.prompt_version}  # fmt: skip


def run_answers(args: argparse.Namespace) -> None:
    """Send the questions to a running service and score its answers."""
    from evaluation.answers import evaluate_answers, load_questions

    items = load_questions(args.qa, args.unanswerable)
    report = evaluate_answers(items, args.url, timeout=args.timeout, api_key=args.api_key,
                              concurrency=args.concurrency, **_answer_options(args))  # fmt: skip
    _report(f"answers: {len(items)} questions to {args.url}", {"service": report}, {})


def run_variants(args: argparse.Namespace) -> None:
    """Every variant of a running service on the same questions, side by side."""
    from evaluation.answers import load_questions
    from evaluation.variants import evaluate_variants, listed_variants

    items = load_questions(args.qa, args.unanswerable)
    auth = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    names = args.variants or listed_variants(args.url, auth, args.timeout)
    ks = tuple(sorted(args.k))
    results = evaluate_variants(items, args.url, names, args.api_key, ks, args.timeout,
                                args.concurrency, **_answer_options(args))  # fmt: skip
    extra = {"task": "variants", "qa": str(args.qa), "variants": names}
    _report(f"variants: {len(items)} questions to {args.url}, each variant forced", results,
            extra)  # fmt: skip


def run_redteam(args: argparse.Namespace) -> None:
    """Run a labelled set through the injection guard, in this process or through --url."""
    from evaluation.redteam import evaluate_redteam

    if not args.data.exists():
        raise InputError(f"no such file: {args.data}")
    settings = Settings()
    if args.url:
        from evaluation.redteam_http import evaluate_redteam_http
        from ragcore.prompts import default_template

        report = evaluate_redteam_http(
            args.url, args.data, args.benign, args.extraction,
            default_template(settings.service.answers).system, api_key=args.api_key,
            max_tokens=args.max_tokens, concurrency=args.concurrency,
        )  # fmt: skip
    else:
        from ragcore.embedding import query_embedder_for
        from ragcore.guards.injection import InjectionDetector

        encoder = query_embedder_for(settings.service)  # what the Ingress embeds with
        report = evaluate_redteam(InjectionDetector(encoder.embed_now), args.data, args.benign,
                                  args.extraction)  # fmt: skip
    from evaluation.metrics import format_table

    print(f"redteam: {args.data}" + (f" via {args.url}" if args.url else " (in process)"))
    print(*format_table({"injection guard": report}), sep="\n")
    print(json.dumps(report, sort_keys=True))


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command; user errors print one line and exit 2."""
    args = parse_args(argv)
    try:
        if args.command in ("answers", "variants"):
            (run_answers if args.command == "answers" else run_variants)(args)
            return 0
        if args.command == "redteam":
            run_redteam(args)
            return 0
        settings = Settings()
        retrieval = _retrieval(args, settings)
        if args.command == "ray-qa":
            run_ray_qa(args, settings, retrieval)
        else:
            run_beir(args, settings, retrieval)
    except (InputError, IndexNotReadyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"error: invalid setting: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
