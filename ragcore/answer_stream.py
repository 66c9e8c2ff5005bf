"""Screening a streamed answer as it arrives: whole words only, no URL outside the sources,
no citation to a number that was not retrieved, and a loop noticed the moment it starts."""

from __future__ import annotations

import re

from ragcore.answer_checks import LoopDetector
from ragcore.citations import CITATION_RE, allowed_pages, strip_urls
from ragcore.grounding import split_sentences
from ragcore.prompts import PromptTemplate
from ragcore.protocols import Hit
from utils.answer_settings import ValidationSettings


class StreamGuard:
    """Feed it the engine's deltas; it returns the text that is safe to send now."""

    def __init__(
        self, hits: list[Hit], settings: ValidationSettings, template: PromptTemplate
    ) -> None:
        self._template = template
        self._pages = allowed_pages([h.source for h in hits])
        self._count = len(hits)
        self._loops = LoopDetector(settings.ngram, settings.max_ngram_count)
        self._screening = settings.enabled
        self._max_sentences = settings.max_sentences
        self._pending = ""  # the last, maybe unfinished, word (a URL arrives in pieces)
        self.text = ""  # everything the engine produced, unscreened (what validation judges)
        self.stop_reason: str | None = None  # why the stream must stop now, if it must

    def _must_stop(self) -> str | None:
        """The stop reason now: `repetition` once the answer loops, `sentence_limit` once it
        has more complete sentences than it may (echoed prompt lines do not count)."""
        if not self._screening:
            return None
        if self._loops.looped:
            return "repetition"
        answer = self._template.strip_scaffolding(self.text)
        finished = split_sentences(answer)[:-1]  # the last one may still be growing
        return "sentence_limit" if len(finished) > self._max_sentences else None

    def feed(self, delta: str) -> str:
        """Take one delta; return the screened text of the words it completed. Updates
        `stop_reason` once per delta (the service reads it several times)."""
        delta = self._template.unmark(delta)
        self.text += delta
        self._loops.feed(delta)
        self.stop_reason = self._must_stop()
        self._pending += delta
        cut = max(self._pending.rfind(" "), self._pending.rfind("\n"))
        if cut < 0:
            return ""
        ready, self._pending = self._pending[: cut + 1], self._pending[cut + 1 :]
        return self._screen(ready)

    def flush(self) -> str:
        """The screened remainder once the stream has ended."""
        ready, self._pending = self._pending, ""
        return self._screen(ready)

    def _screen(self, text: str) -> str:
        if not self._screening:
            return text
        text, _ = strip_urls(text, self._pages)

        def in_range(match: re.Match[str]) -> str:
            numbers = [n for n in re.findall(r"\d+", match.group(1)) if 1 <= int(n) <= self._count]
            return "".join(f"[{n}]" for n in numbers)

        return CITATION_RE.sub(in_range, text)
