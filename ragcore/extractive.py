"""The honest fallback: the retrieved sentences that best match the question, quoted with
their [n], when a generated answer cannot be trusted or no generator answers."""

from __future__ import annotations

import re

from ragcore.answer_checks import max_ngram_count
from ragcore.grounding import content_words, looks_like_code, split_sentences
from ragcore.protocols import Hit

EXTRACTIVE_LEAD = "From the documentation:"
REFUSAL_TEXT = (
    "I could not find this in the indexed documentation, so I will not guess. "
    "The closest passages retrieved are listed in the sources."
)
_MIN_WORDS, _MAX_CHARS = 5, 400


def _readable(sentence: str) -> bool:
    """Prose worth quoting: not a fragment, a code line or a wall of text."""
    words = sentence.split()
    if len(words) < _MIN_WORDS or len(sentence) > _MAX_CHARS:
        return False
    if looks_like_code(sentence) or "://" in sentence:
        return False  # code, or a URL: the answer may only link the sources themselves
    if max_ngram_count(sentence, 4) > 1:
        return False  # API listings repeat themselves
    letters = sum(ch.isalpha() for ch in sentence)
    return letters >= 0.6 * len(sentence.replace(" ", ""))


def _clean(sentence: str) -> str:
    sentence = " ".join(sentence.split()).lstrip("#*->• ").strip()
    return sentence if sentence[-1:] in ".!?:" else sentence + "."


_BLOCK_START_RE = re.compile(r"^\s*(?:[-*#>|]|\d+\.)")


def unwrap(text: str) -> str:
    """Join the lines a paragraph was wrapped at (Markdown sources wrap prose), keeping blank
    lines, list items, headings, quotes and code on their own lines: a quoted sentence is
    whole, and a command is never glued to prose."""
    lines: list[str] = []
    for line in text.split("\n"):
        previous = lines[-1] if lines else ""
        joins = (previous.strip() and line.strip() and not _BLOCK_START_RE.match(line)
                 and not looks_like_code(previous) and not looks_like_code(line))  # fmt: skip
        if joins:
            lines[-1] = f"{previous.rstrip()} {line.strip()}"
        else:
            lines.append(line)
    return "\n".join(lines)


def extract_sentences(question: str, hits: list[Hit], limit: int) -> list[tuple[int, str]]:
    """Up to `limit` (source number, sentence) pairs: the readable sentences sharing the most
    question words, with a preference for higher-ranked sources, in source order."""
    asked = content_words(question)
    scored: list[tuple[float, float, int, int, str]] = []
    for number, hit in enumerate(hits, start=1):
        for position, sentence in enumerate(split_sentences(unwrap(hit.content))):
            if not _readable(sentence):
                continue
            words = content_words(sentence)
            overlap = len(asked & words) / (len(asked) or 1)
            # Rank prior: the retriever's order is evidence too, a little less each step.
            score = overlap + 0.15 / number - 0.01 * position
            scored.append((score, overlap, number, position, _clean(sentence)))
    best = max((item[1] for item in scored), default=0.0)
    # Quote only sentences about the question: at least half the best one's question words.
    scored = [item for item in scored if item[1] >= best / 2]
    scored.sort(key=lambda item: -item[0])
    chosen: list[tuple[int, int, str]] = []
    for _, _, number, position, sentence in scored:
        # A sentence that repeats a 6-word run of the ones already chosen adds nothing (docs
        # list near-identical lines: "installs Ray + dependencies for Ray Tune").
        if max_ngram_count(" ".join([*(c[2] for c in chosen), sentence]), 6) > 1:
            continue
        chosen.append((number, position, sentence))
        if len(chosen) == limit:
            break
    chosen.sort()
    return [(number, sentence) for number, _, sentence in chosen]


def extractive_answer(question: str, hits: list[Hit], limit: int) -> tuple[str, tuple[int, ...]]:
    """The quoted sentences as one answer, each with its [n], and the numbers cited. Falls back
    to the top source's opening when no sentence reads as prose."""
    picked = extract_sentences(question, hits, limit)
    if not picked and hits:
        opening = " ".join(hits[0].content.split())[:300].rstrip()
        picked = [(1, opening + ("." if opening[-1:] not in ".!?" else ""))]
    if not picked:
        return REFUSAL_TEXT, ()
    lines = [f"- {sentence} [{number}]" for number, sentence in picked]
    cited: list[int] = []
    for number, _ in picked:
        if number not in cited:
            cited.append(number)
    return "\n".join([EXTRACTIVE_LEAD, *lines]), tuple(cited)
