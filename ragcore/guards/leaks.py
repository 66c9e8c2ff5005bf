"""System-prompt and secret leaks, and markup a browser would run, in answers.

The system prompt carries a per-deployment canary token. An answer that contains the canary
(also spaced out, re-cased or inside a code block), or that repeats the system prompt (a large
share of its word 5-grams, or one long verbatim run), is a leak; the service then answers with
a refusal. `StreamLeakCheck` runs the same checks on a stream as it goes."""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass, field

from ragcore.guards.normalize import canonical

SHINGLE = 5
LEAK_SHARE = 0.3  # of the system prompt's 5-grams found in the answer
LEAK_RUN_WORDS = 12  # consecutive system-prompt words repeated verbatim
MAX_RUN_WORDS = 400  # answer words the verbatim-run check reads
# What a browser would execute or load: script-like elements, event handlers, javascript:
# and data: URLs. Answers are plain text with markdown; these never belong in one.
MARKUP = re.compile(
    r"<\s*/?\s*(?:script|iframe|object|embed|style|link|meta|base|form|svg|math)\b[^>]*>"
    r"|\bon[a-z]+\s*=\s*[\"']?[^\"'>\s]*|(?:javascript|vbscript|data)\s*:[^\s)\"'>]*",
    re.I,
)


def canary_for(secret: str) -> str:
    """A deployment's canary token, derived from a secret it keeps (stable across replicas)."""
    return "cnry-" + hashlib.sha256(secret.encode()).hexdigest()[:16]


def _flat(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold().replace("\u200b", ""))


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", canonical(text))


def _shingles(words: list[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


def _run_row(word: str, previous: list[int], prompt: list[str]) -> list[int]:
    """One row of the longest-common-run table: for each prompt position, the length of the
    shared run of words that ends at `word` and there."""
    current = [0] * (len(prompt) + 1)
    for j, other in enumerate(prompt, start=1):
        if word == other:
            current[j] = previous[j - 1] + 1
    return current


class _Overlap:
    """How much of the system prompt an answer's words repeat, kept up to date as the words
    grow at their end: a stream re-derives only what follows the words it had already seen,
    instead of the whole table per piece (quadratic in the answer's length)."""

    def __init__(self, prompt: list[str], shingles: set[tuple[str, ...]]) -> None:
        self.prompt = prompt
        self.shingles = shingles
        self.words: list[str] = []
        self.rows: list[list[int]] = []  # one per word, for the first MAX_RUN_WORDS words
        self.best: list[int] = []  # longest run ending within each row
        self.hits: list[tuple[str, ...] | None] = []  # each 5-gram if the prompt has it

    def update(self, words: list[str]) -> str:
        """The leak reason for an answer with `words`, or ""."""
        kept = 0
        for old, new in zip(self.words, words, strict=False):
            if old != new:
                break
            kept += 1
        self.words = words
        del self.rows[kept:], self.best[kept:], self.hits[max(0, kept - SHINGLE + 1) :]
        for word in words[len(self.rows) : MAX_RUN_WORDS]:
            row = _run_row(word, self.rows[-1] if self.rows else [0] * (len(self.prompt) + 1),
                           self.prompt)  # fmt: skip
            self.rows.append(row)
            self.best.append(max(row))
        for i in range(len(self.hits), len(words) - SHINGLE + 1):
            gram = tuple(words[i : i + SHINGLE])
            self.hits.append(gram if gram in self.shingles else None)
        if self.shingles:
            found = {gram for gram in self.hits if gram is not None}
            if len(found) / len(self.shingles) >= LEAK_SHARE:
                return "system_prompt"
        return "system_prompt" if max(self.best, default=0) >= LEAK_RUN_WORDS else ""


@dataclass(frozen=True)
class LeakGuard:
    """Checks answers against one system prompt and its canary."""

    system_prompt: str
    canary: str
    _prompt_words: list[str] = field(init=False, repr=False)
    _prompt_shingles: set[tuple[str, ...]] = field(init=False, repr=False)
    _flat_canaries: tuple[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        words = _words(self.system_prompt.replace(self.canary, " "))
        object.__setattr__(self, "_prompt_words", words)
        object.__setattr__(self, "_prompt_shingles", _shingles(words))
        flat = (_flat(self.canary), _flat(canonical(self.canary)))
        object.__setattr__(self, "_flat_canaries", flat)

    def leak(self, answer: str) -> str:
        """ "canary" or "system_prompt" when the answer leaks, else ""."""
        return self.leak_with(answer, self.overlap())

    def overlap(self) -> _Overlap:
        """A fresh prompt-overlap state, for `leak_with`."""
        return _Overlap(self._prompt_words, self._prompt_shingles)

    def leak_with(self, answer: str, overlap: _Overlap) -> str:
        """`leak`, with the prompt overlap kept in `overlap` (a stream passes the same one
        with its growing text)."""
        # Compared without separators, both as written and through the detection view (which
        # also joins spaced-out letters).
        for view in (answer.casefold(), canonical(answer)):
            flat = _flat(view)
            if self._flat_canaries[0] in flat or self._flat_canaries[1] in flat:
                return "canary"
        return overlap.update(_words(answer))


def strip_markup(text: str) -> tuple[str, int]:
    """The answer without executable markup (escaped), and how many pieces were removed."""
    count = 0

    def neutral(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        found = match.group(0)
        return html.escape(found) if found.lstrip().startswith("<") else ""  # tags shown, not run

    return MARKUP.sub(neutral, text), count


@dataclass
class StreamLeakCheck:
    """The leak check over a stream: each piece is checked with what came before it, so a
    canary split across pieces is still caught. `feed` returns the reason once it leaks."""

    guard: LeakGuard
    text: str = ""
    reason: str = ""
    _overlap: _Overlap = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._overlap = self.guard.overlap()

    def feed(self, piece: str) -> str:
        """Add a piece; the leak reason (sticky), or ""."""
        if not self.reason:
            self.text += piece
            self.reason = self.guard.leak_with(self.text, self._overlap)
        return self.reason
