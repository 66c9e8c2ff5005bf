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


def _longest_run(answer: list[str], prompt: list[str]) -> int:
    """Longest run of consecutive words shared by both (dynamic programming, small inputs)."""
    best, previous = 0, [0] * (len(prompt) + 1)
    for word in answer:
        current = [0] * (len(prompt) + 1)
        for j, other in enumerate(prompt, start=1):
            if word == other:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


@dataclass(frozen=True)
class LeakGuard:
    """Checks answers against one system prompt and its canary."""

    system_prompt: str
    canary: str
    _prompt_words: list[str] = field(init=False, repr=False)
    _prompt_shingles: set[tuple[str, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        words = _words(self.system_prompt.replace(self.canary, " "))
        object.__setattr__(self, "_prompt_words", words)
        object.__setattr__(self, "_prompt_shingles", _shingles(words))

    def leak(self, answer: str) -> str:
        """ "canary" or "system_prompt" when the answer leaks, else ""."""
        # Compared without separators, both as written and through the detection view (which
        # also joins spaced-out letters).
        for view in (answer.casefold(), canonical(answer)):
            if _flat(self.canary) in _flat(view) or _flat(canonical(self.canary)) in _flat(view):
                return "canary"
        words = _words(answer)
        if self._prompt_shingles:
            share = len(_shingles(words) & self._prompt_shingles) / len(self._prompt_shingles)
            if share >= LEAK_SHARE:
                return "system_prompt"
        if _longest_run(words[:400], self._prompt_words) >= LEAK_RUN_WORDS:
            return "system_prompt"
        return ""


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

    def feed(self, piece: str) -> str:
        """Add a piece; the leak reason (sticky), or ""."""
        if not self.reason:
            self.text += piece
            self.reason = self.guard.leak(self.text)
        return self.reason
