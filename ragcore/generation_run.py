"""The state of one generation while it streams: what it produced and what it cost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ragcore.prompts import PromptTemplate
from ragcore.protocols import Usage


@dataclass
class GenerationRun:
    """What one generation has produced so far."""

    template: PromptTemplate
    prompt_estimate: int = 0
    usage: Usage = field(default_factory=Usage)
    stop_reason: str = "stop"
    failure: str = ""
    first_token_at: float | None = None
    deltas: int = 0
    engine: str = ""  # the engine that generates it
    fallback: bool = False  # another engine than the variant's own

    def charged(self) -> Usage:
        """What the generation cost: the engine's counts, else (cut before it reported any)
        the counted prompt and one token per delta received."""
        if self.usage.total:
            return self.usage
        return Usage(self.prompt_estimate, self.deltas) if self.deltas else Usage()

    @property
    def version(self) -> str:
        """The prompt version it was generated with."""
        return self.template.version


async def aclose(stream: AsyncIterator[Any]) -> None:
    """Close an async iterator if it can be closed (cancels a generation)."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
