"""The checks an answer passes before it leaves the service: no loop, grounded, cited, short.

`LoopDetector` is the streaming form of the repetition check: fed text as tokens arrive, it
says when the answer has started to loop, so the stream can be cut there.
"""

from __future__ import annotations

import re
from collections import Counter

from ragcore.citations import CITATION_RE, CitedText
from ragcore.grounding import split_sentences, supported_share
from ragcore.protocols import Validation
from utils.answer_settings import ValidationSettings

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def word_tokens(text: str) -> list[str]:
    """Lower-cased words and punctuation marks: what n-gram repetition is counted on."""
    return _TOKEN_RE.findall(text.lower())


def max_ngram_count(text: str, n: int) -> int:
    """How often the most repeated word n-gram of `text` occurs (0 for a shorter text)."""
    tokens = word_tokens(text)
    grams = Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return max(grams.values(), default=0)


class LoopDetector:
    """Counts word n-grams incrementally; `looped` turns true once one occurs more than
    `max_count` times."""

    def __init__(self, n: int, max_count: int) -> None:
        self.n = n
        self.max_count = max_count
        self.looped = False
        self._text = ""
        self._seen = 0  # tokens already counted
        self._grams: Counter[tuple[str, ...]] = Counter()

    def feed(self, text: str) -> bool:
        """Add streamed text; True when the answer so far loops. Only complete words count:
        the last token may still be growing."""
        self._text += text
        tokens = word_tokens(self._text)
        complete = len(tokens) - 1 if self._text and not self._text[-1].isspace() else len(tokens)
        for end in range(max(self._seen, self.n), complete + 1):
            gram = tuple(tokens[end - self.n : end])
            self._grams[gram] += 1
            if self._grams[gram] > self.max_count:
                self.looped = True
        self._seen = max(self._seen, complete + 1)
        return self.looped


def cut_at_repeat(text: str, n: int) -> str:
    """`text` up to the sentence where it starts repeating itself: the first sentence that
    holds a word n-gram already seen (in an earlier sentence or earlier in itself) ends it.
    A small model often answers well for a sentence or two and then loops; the loop is cut,
    the answer before it kept (and validated like any other)."""
    seen: set[tuple[str, ...]] = set()
    said: set[tuple[str, ...]] = set()
    kept_until = 0
    position = 0
    for sentence in split_sentences(text):
        start = text.find(sentence, position)
        position = start + len(sentence)
        # Citation numbers do not make a sentence new: "[3] Ray Serve" repeats "[2] Ray Serve".
        tokens = word_tokens(CITATION_RE.sub(" ", sentence))
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        if len(set(grams)) < len(grams) or seen.intersection(grams) or tuple(tokens) in said:
            break
        seen.update(grams)
        said.add(tuple(tokens))
        kept_until = position
    return text[:kept_until].rstrip() if kept_until else ""


def limit_sentences(text: str, most: int) -> str:
    """`text` up to the end of its `most`-th sentence or line."""
    position = 0
    for count, sentence in enumerate(split_sentences(text), start=1):
        position = text.find(sentence, position) + len(sentence)
        if count == most:
            return text[:position]
    return text


def trim_to_sentence(text: str) -> str:
    """`text` up to its last complete sentence (for an answer cut at max_tokens)."""
    stripped = text.rstrip()
    if not stripped or stripped[-1] in ".!?`)":
        return stripped
    parts = split_sentences(stripped)
    if len(parts) <= 1:
        return ""
    last = stripped.rfind(parts[-1])
    return stripped[:last].rstrip()


def reason_code(reason: str) -> str:
    """The stable label of a validation reason ("groundedness: 0.33 below 0.50" ->
    "groundedness"), for metrics."""
    return reason.split(":", 1)[0]


def validate(cited: CitedText, contexts: list[str], settings: ValidationSettings) -> Validation:
    """Score the answer and list every check it fails. `cited` is the text after loop cutting
    and citation grounding: what the user would read."""
    repeats = max_ngram_count(cited.text, settings.ngram)
    grounded = supported_share(cited.text, contexts)
    reasons: list[str] = []
    if not cited.text.strip():
        reasons.append("empty: the answer has no text")
    if repeats > settings.max_ngram_count:
        reasons.append(f"repetition: a {settings.ngram}-word sequence occurs {repeats} times")
    if grounded < settings.min_groundedness:
        reasons.append(f"groundedness: {grounded:.2f} below {settings.min_groundedness:.2f}")
    if settings.require_citation and not cited.cited:
        reasons.append("citation: no retrieved source is cited")
    if len(cited.text) > settings.max_chars:
        reasons.append(f"length: longer than {settings.max_chars} characters")
    return Validation(
        passed=not reasons,
        reasons=tuple(reasons),
        max_ngram_count=repeats,
        groundedness=round(grounded, 4),
        valid_citations=len(cited.cited),
        invalid_citations=cited.invalid,
        urls_removed=cited.urls_removed,
        chars=len(cited.text),
    )
