"""/ask's ceiling for bench/serve_load.py: once Serve has given the cores back, the engine alone
(bench/engine_ceiling.py) generates for the prompts /ask answered, rebuilt from the sources
each answer got."""

from __future__ import annotations

from bench import serve_report as report
from bench.engine_ceiling import Ceiling, engine_ceiling
from bench.loadgen import Level, Sample
from ragcore.prompts import default_template
from ragcore.protocols import Hit
from utils.settings import ServiceSettings


def conversations(answered: list[Sample], max_chars: int) -> list[list[dict[str, str]]]:
    """The prompts the answers were generated from, rebuilt from the sources each one got."""
    template = default_template(ServiceSettings().answers)
    return [
        template.render(
            s.question,
            [
                Hit(
                    h["content"],
                    h["source"],
                    h["score"],
                    " > ".join(t for t in (h.get("title"), h.get("section")) if t),
                )
                for h in (s.done or {})["sources"]
            ],
            max_chars,
        )
        for s in answered
    ]


def transformers_level(prompts: list[list[dict[str, str]]], model: str, max_tokens: int) -> Level:
    """The prompts one at a time through a plain transformers `generate` loop."""
    from bench.baselines import transformers_generate

    timings = transformers_generate(model, prompts, max_tokens)
    samples = [
        Sample(True, t.total_s, "", t.ttft_s, t.prompt_tokens, t.completion_tokens) for t in timings
    ]
    return Level(report.TRANSFORMERS, 1, samples, sum(t.total_s for t in timings))


def after_serve(
    ask: list[Level], service: ServiceSettings, max_tokens: int, transformers_loop: bool
) -> Ceiling | None:
    """The engine's ceiling (and, if asked, the transformers loop) on the concurrency-8 /ask
    prompts, once Serve has given the cores back; appends the loop's level to `ask`. The
    engine generates each answer to the length /ask generated (the same work: /ask ends an
    answer at its sentence limit or a loop), then every answer to max_tokens (for reference)."""
    answered = ask[-1].generated if ask else []
    if not answered:
        return None
    prompts = conversations(answered, service.generator.max_context_chars)
    lengths = [s.completion_tokens for s in answered]
    equal = engine_ceiling(prompts, lengths, service.generator, max_in_flight=8)
    full = engine_ceiling(prompts, max_tokens, service.generator, max_in_flight=8)
    ceiling = Ceiling(equal, full)
    print(f"engine alone: {equal.tokens_per_s:.1f} tokens/s on the same work, "
          f"{full.tokens_per_s:.1f} to max_tokens", flush=True)  # fmt: skip
    if transformers_loop:
        ask.append(transformers_level(prompts, service.generator.model_source, max_tokens))
        report.print_levels(ask[-1:], ask=True)
    return ceiling
