"""Choose /ask's decoding defaults and refusal threshold by measurement on the dev questions.

    python bench/answer_sweep.py [--index-dir DIR] [--questions 80] [--configs NAME ...]

Retrieves the top 5 for Ray-docs dev questions over the full index exactly as the service
does, renders each prompt version, and generates all answers at once with vLLM's offline
engine (SmolLM2, no Serve: the sweep measures decoding, not serving). Each configuration is
scored twice: the model's raw text (the old behaviour) and the answer the service would
return after citation grounding, validation and the extractive fallback. Also prints the
retrieval relevance (best cosine) of the dev questions and of the out-of-corpus questions, for
the refusal threshold. Writes the scores and the raw answers to --out (/tmp by default: the
answers are data, not results); docs/benchmarks.md quotes the scores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from evaluation.answers import answer_quality
from evaluation.metrics import mean
from ragcore.protocols import Hit

OUT_OF_CORPUS = Path(__file__).resolve().parent.parent / "evaluation/data/out-of-corpus.jsonl"
# name -> (prompt version, decoding overrides on top of the version's own block)
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "v1 greedy (before)": ("answer-v1", {}),
    "v2 greedy": ("answer-v2", {"repetition_penalty": 1.0, "frequency_penalty": 0.0,
                                "loop_ngram_tokens": 0}),
    "v2 repetition 1.1": ("answer-v2", {"repetition_penalty": 1.1, "frequency_penalty": 0.0,
                                        "loop_ngram_tokens": 0}),
    "v2 frequency 0.3": ("answer-v2", {"repetition_penalty": 1.0, "frequency_penalty": 0.3,
                                       "loop_ngram_tokens": 0}),
    "v2 frequency 0.6": ("answer-v2", {"repetition_penalty": 1.0, "frequency_penalty": 0.6,
                                       "loop_ngram_tokens": 0}),
    "v2 presence 0.5": ("answer-v2", {"repetition_penalty": 1.0, "presence_penalty": 0.5,
                                      "frequency_penalty": 0.0, "loop_ngram_tokens": 0}),
    "v2 frequency 0.3 + loop stop": ("answer-v2", {"repetition_penalty": 1.0,
                                                   "frequency_penalty": 0.3,
                                                   "loop_ngram_tokens": 16}),
    "v2 greedy + loop stop": ("answer-v2", {"repetition_penalty": 1.0, "frequency_penalty": 0.0,
                                            "loop_ngram_tokens": 16}),
}  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=common.RAY_DOCS_INDEX)
    parser.add_argument("--questions", type=int, default=80, help="dev questions (from the top)")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), help="default: all")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("/tmp/answer_sweep.json"),
                        help="the scores and every raw answer, for re-scoring offline")  # fmt: skip
    parser.add_argument("--prompts-dir", type=Path, help="templates to load (default: prompts/)")
    parser.add_argument("--try", dest="versions", nargs="+", default=[],
                        help="also run these prompt versions with their own decoding")  # fmt: skip
    return parser.parse_args()


def settings() -> Any:
    """The service's settings, with --prompts-dir when given."""
    from utils.settings import ServiceSettings

    if ARGS.prompts_dir:
        return ServiceSettings(answers={"prompts_dir": ARGS.prompts_dir})
    return ServiceSettings()


def retrieve(index_dir: Path, questions: list[str], k: int) -> list[list[Hit]]:
    """The service's hybrid retrieval for each question, as service hits (with relevance)."""
    from evaluation.retrieval import Searcher
    from ragcore.index_format import load_index
    from ragcore.search import to_hit
    from utils.settings import ServiceSettings

    settings = ServiceSettings()
    searcher = Searcher(load_index(index_dir), settings.retrieval, encoder=settings.query_encoder)
    return [[to_hit(r) for r in hits] for hits in searcher.search(questions, k, "hybrid")]


def relevance_report(dev: list[list[Hit]], ooc: list[list[Hit]]) -> dict[str, Any]:
    """Best cosine per question, in-corpus and out, and the refusal rates of thresholds."""
    import numpy as np

    best_dev = [max((h.relevance for h in hits), default=0.0) for hits in dev]
    best_ooc = [max((h.relevance for h in hits), default=0.0) for hits in ooc]
    rows = {}
    for threshold in (0.2, 0.25, 0.3, 0.35, 0.4, 0.45):
        rows[str(threshold)] = {
            "dev_refused": mean([float(b < threshold) for b in best_dev]),
            "out_of_corpus_refused": mean([float(b < threshold) for b in best_ooc]),
        }
    pct = (1, 5, 10, 50)
    return {
        "dev_percentiles": {p: float(np.percentile(best_dev, p)) for p in pct},
        "ooc_percentiles": {p: float(np.percentile(best_ooc, p)) for p in (50, 90, 95, 99)},
        "thresholds": rows,
    }


def generate(
    config: tuple[str, dict[str, Any]], questions: list[str], hits: list[list[Hit]], llm: Any
) -> list[tuple[str, int, str]]:
    """(text, completion tokens, stop reason) per question for one configuration."""
    from vllm import SamplingParams
    from vllm.sampling_params import RepetitionDetectionParams

    from ragcore.answering import AnswerPolicy, AskOptions

    service = settings()
    policy = AnswerPolicy(service.answers, service.generator)
    version, overrides = config
    template = policy.template(version)
    params = policy.decoding(template, AskOptions(max_tokens=ARGS.max_tokens))
    values = {**params.__dict__, **overrides}
    loops = None
    if values["loop_ngram_tokens"]:
        loops = RepetitionDetectionParams(values["loop_ngram_tokens"], 1, values["loop_min_count"])
    sampling = SamplingParams(
        max_tokens=values["max_tokens"], temperature=0.0,
        repetition_penalty=values["repetition_penalty"],
        frequency_penalty=values["frequency_penalty"],
        presence_penalty=values["presence_penalty"], repetition_detection=loops,
    )  # fmt: skip
    chars = service.generator.max_context_chars
    prompts = [template.render(q, h, chars) for q, h in zip(questions, hits, strict=True)]
    outputs = llm.chat(prompts, sampling, use_tqdm=False)
    results = []
    for out in outputs:
        choice = out.outputs[0]
        reason = "repetition" if choice.stop_reason == "repetition_detected" else (
            choice.finish_reason or "stop")  # fmt: skip
        results.append((choice.text, len(choice.token_ids), reason))
    return results


def score(
    version: str,
    questions: list[str],
    hits: list[list[Hit]],
    answers: list[tuple[str, int, str]],
) -> dict[str, Any]:
    """The judge-free scores of the raw text and of what the service would return for
    answers generated with prompt `version`."""
    from ragcore.answering import AnswerPolicy

    service = settings()
    policy = AnswerPolicy(service.answers, service.generator)
    template = policy.template(version)
    raw: dict[str, list[float]] = {}
    served: dict[str, list[float]] = {}
    reasons: dict[str, int] = {}
    for question, found, (text, tokens, reason) in zip(questions, hits, answers, strict=True):
        sources = [{"source": h.source, "content": h.content} for h in found]
        for name, value in answer_quality(text, sources, tokens, ARGS.max_tokens).items():
            raw.setdefault(name, []).append(value)
        finished = policy.finish(question, text, found, reason, template)
        if finished.reason:
            reasons[finished.reason] = reasons.get(finished.reason, 0) + 1
        final_tokens = tokens if finished.mode == "generated" else 0
        quality = answer_quality(finished.text, sources, final_tokens, ARGS.max_tokens)
        quality["extractive_share"] = float(finished.mode == "extractive")
        for name, value in quality.items():
            served.setdefault(name, []).append(value)
    reduce = lambda rows: {k: round(mean(v), 4) for k, v in rows.items()}  # noqa: E731
    return {"raw": reduce(raw), "served": reduce(served), "fallback_reasons": reasons}


def main() -> None:
    from vllm import LLM

    from utils.settings import ServiceSettings

    questions = [q for q in common.load_questions()][: ARGS.questions]
    ooc = [json.loads(line)["question"] for line in OUT_OF_CORPUS.read_text().splitlines()]
    found = retrieve(ARGS.index_dir, questions + ooc, 5)
    dev_hits, ooc_hits = found[: len(questions)], found[len(questions) :]
    results: dict[str, Any] = {"relevance": relevance_report(dev_hits, ooc_hits)}
    print(json.dumps(results["relevance"], indent=1), flush=True)
    generator = ServiceSettings().generator
    llm = LLM(generator.model_source, **generator.engine_kwargs)
    CONFIGS.update({version: (version, {}) for version in ARGS.versions})
    for name in (ARGS.configs or []) + ARGS.versions:
        answers = generate(CONFIGS[name], questions, dev_hits, llm)
        results[name] = score(CONFIGS[name][0], questions, dev_hits, answers)
        results[name]["answers"] = answers  # re-scored offline while tuning the checks
        shown = ("raw", "served", "fallback_reasons")
        print(name, json.dumps({k: results[name][k] for k in shown}), flush=True)
        ARGS.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    results["questions"] = len(questions)
    ARGS.out.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    ARGS = parse_args()
    main()
