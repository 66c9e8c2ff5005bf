"""The generator's warm-up and health, as /readyz reports them."""

from __future__ import annotations

import asyncio
import time

from ragcore.answering import AnswerPolicy
from ragcore.metrics import elapsed_ms
from ragcore.protocols import DecodingParams, Generator, Hit
from utils.logs import get_logger
from utils.settings import GeneratorSettings

log = get_logger("service")
WARMUP_QUESTION = "How do I configure the number of replicas of a deployment?"


class GeneratorWarmth:
    """ "warming" until `warm_up` finishes: ready must mean fast, so /readyz waits for it."""

    def __init__(self, generator: Generator | None, settings: GeneratorSettings) -> None:
        self.generator = generator
        self.settings = settings
        if generator is None:
            self.state = "disabled"
        else:
            self.state = "warming" if settings.warmup_timeout_s > 0 else "ready (not warmed up)"

    async def warm_up(self, policy: AnswerPolicy) -> None:
        """Run one full-size generation (a RAG-sized prompt) before the service reports ready,
        so the first real /ask does not pay the engine's first-request costs. Retries while the
        engine is still starting; after `warmup_timeout_s` the service goes ready without it
        and /ask degrades until the engine answers."""
        gen = self.settings
        if self.generator is None or gen.warmup_timeout_s <= 0:
            return
        deadline = time.monotonic() + gen.warmup_timeout_s
        filler = [Hit("Replicas are set with num_replicas in the deployment options. " * 12,
                      f"warmup#{i}", 1.0) for i in range(5)]  # fmt: skip
        messages = policy.template(None).render(WARMUP_QUESTION, filler, gen.max_context_chars)
        while True:
            start = time.perf_counter()
            try:
                await asyncio.wait_for(
                    self.generator.generate(messages, DecodingParams(max_tokens=8)), gen.timeout_s
                )
                self.state = "ready"
                log.info("generator warm", extra={"warmup_ms": round(elapsed_ms(start), 1)})
                return
            except Exception as exc:
                reason = f"{type(exc).__name__}: {str(exc)[:200]}"
                if time.monotonic() > deadline:
                    self.state = f"unavailable ({reason})"
                    log.warning("generator warm-up gave up", extra={"error": reason})
                    return
                await asyncio.sleep(2.0)

    async def health(self) -> str:
        """The warm-up state, or, once warm, whether the engine answers its health check now
        (an engine that died since is reported, while search keeps the service ready)."""
        if self.generator is None or self.state != "ready":
            return self.state
        try:
            state = await asyncio.wait_for(self.generator.readiness(), 5.0)
        except Exception as exc:
            return f"unavailable ({type(exc).__name__})"
        return "ready" if state.ready else f"unavailable ({state.reason})"
