"""The generator engines a service may answer with: each behind a circuit breaker, with the
order in which they are tried when one fails, and fault injection for canary drills."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from ragcore.breaker import STATE_VALUES, BreakerState, CircuitBreaker
from ragcore.metrics import MetricsSink, NullMetrics
from ragcore.protocols import DecodingParams, Generation, GenerationDelta, Generator, Readiness
from utils.variant_settings import BreakerSettings, FaultSettings, VariantSettings


class InjectedFault(RuntimeError):
    """A failure a fault-injection variant produced on purpose."""


class FaultyGenerator:
    """A generator that fails a share of its calls and adds latency (canary drills)."""

    def __init__(
        self, inner: Generator, fault: FaultSettings, rng: Callable[[], float] = random.random
    ) -> None:
        self.inner = inner
        self.fault = fault
        self.rng = rng

    async def _maybe_fail(self) -> None:
        if self.fault.added_latency_ms:
            await asyncio.sleep(self.fault.added_latency_ms / 1000)
        if self.rng() < self.fault.error_rate:
            raise InjectedFault("injected fault")

    async def generate(self, messages: list[dict[str, str]], params: DecodingParams) -> Generation:
        await self._maybe_fail()
        return await self.inner.generate(messages, params)

    async def stream(
        self, messages: list[dict[str, str]], params: DecodingParams
    ) -> AsyncIterator[GenerationDelta]:
        await self._maybe_fail()
        async for delta in self.inner.stream(messages, params):
            yield delta

    async def readiness(self) -> Readiness:
        return await self.inner.readiness()


@dataclass(frozen=True)
class EngineChoice:
    """One engine to try: its name (the breaker's), the configured engine whose settings
    apply, the generator and whether it is the variant's own engine or a fallback."""

    name: str
    engine: str
    generator: Generator
    breaker: CircuitBreaker
    fallback: bool


class EnginePool:
    """Named engines, one circuit breaker each. A variant with a `fault` gets its own faulty
    copy of its engine with its own breaker, so a drill never opens the breaker that the
    other variants share."""

    def __init__(
        self,
        engines: Mapping[str, Generator],
        breaker: BreakerSettings,
        metrics: MetricsSink | None = None,
    ) -> None:
        self.engines = dict(engines)
        self.settings = breaker
        self.metrics = metrics or NullMetrics()
        self.breakers: dict[str, CircuitBreaker] = {}
        self._faulty: dict[str, Generator] = {}
        for name in self.engines:
            self._breaker(name)

    def _breaker(self, name: str) -> CircuitBreaker:
        if name not in self.breakers:

            def report(state: BreakerState, name: str = name) -> None:
                self.metrics.breaker_state(name, STATE_VALUES[state])

            self.breakers[name] = CircuitBreaker(self.settings, on_change=report)
            self.metrics.breaker_state(name, 0)
        return self.breakers[name]

    def _own(self, variant: VariantSettings) -> tuple[str, Generator] | None:
        base = self.engines.get(variant.engine)
        if base is None:
            return None
        if variant.fault is None:
            return variant.engine, base
        name = f"{variant.engine}+fault:{variant.label}"
        if name not in self._faulty:
            self._faulty[name] = FaultyGenerator(base, variant.fault)
        return name, self._faulty[name]

    def choices(self, variant: VariantSettings) -> list[EngineChoice]:
        """The variant's engine first, then every other engine in config order."""
        out: list[EngineChoice] = []
        own = self._own(variant)
        if own is not None:
            out.append(EngineChoice(own[0], variant.engine, own[1], self._breaker(own[0]), False))
        for name, generator in self.engines.items():
            if name != variant.engine:
                out.append(EngineChoice(name, name, generator, self._breaker(name), True))
        return out

    def states(self) -> dict[str, BreakerState]:
        """Each breaker's state now."""
        return {name: breaker.state for name, breaker in self.breakers.items()}
