"""The near-miss guard of the semantic tier: two questions whose embeddings are close may still
ask different things ("how do I enable X" / "how do I disable X", "Ray Data" / "Ray Serve",
"Python 3.9" / "Python 3.10"). A cached answer is reused only when none of these differ."""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.'/-]*[A-Za-z0-9_]|[A-Za-z]|\d+(?:\.\d+)*")
NEGATIONS = frozenset({"not", "no", "never", "without", "cannot", "nor", "none", "neither",
                       "nothing", "nobody", "nowhere", "instead"})  # fmt: skip
# Word stems whose opposites change what is asked; matched by prefix ("enabl" matches
# enable, enabled, enabling). Each pair is compared as present/absent in both questions.
OPPOSITES: tuple[tuple[str, str], ...] = (
    ("enabl", "disabl"), ("start", "stop"), ("add", "remov"), ("increas", "decreas"),
    ("instal", "uninstal"), ("min", "max"), ("befor", "after"), ("upload", "download"),
    ("read", "writ"), ("import", "export"), ("creat", "delet"), ("allow", "den"),
    ("show", "hid"), ("lock", "unlock"), ("encrypt", "decrypt"), ("serializ", "deserializ"),
    ("connect", "disconnect"), ("attach", "detach"), ("upgrad", "downgrad"), ("open", "clos"),
    ("first", "last"), ("larg", "small"), ("fast", "slow"), ("more", "less"), ("up", "down"),
    ("on", "off"), ("in", "out"), ("push", "pull"), ("load", "unload"), ("includ", "exclud"),
    ("success", "fail"), ("sync", "async"), ("input", "output"), ("head", "worker"),
    ("train", "infer"), ("gpu", "cpu"), ("local", "remot"), ("batch", "stream"),
)  # fmt: skip
STOPWORDS = frozenset(
    (
        "a",
        "an",
        "the",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "do",
        "does",
        "did",
        "doing",
        "done",
        "have",
        "has",
        "had",
        "having",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "can",
        "could",
        "should",
        "would",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "to",
        "of",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "about",
        "into",
        "onto",
        "over",
        "under",
        "than",
        "then",
        "so",
        "if",
        "or",
        "and",
        "but",
        "also",
        "any",
        "some",
        "all",
        "each",
        "every",
        "just",
        "only",
        "very",
        "too",
        "please",
        "way",
        "ways",
        "use",
        "using",
        "used",
        "get",
        "set",
        "possible",
        "thing",
        "things",
        "one",
    )
)


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text)


def _stem(word: str) -> str:
    word = word.lower()
    for suffix in ("ations", "ation", "ings", "ing", "ies", "ed", "es", "s", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _negated(words: list[str]) -> bool:
    """Whether the question negates (an odd/even count would be too clever: any negation)."""
    return any(w.lower() in NEGATIONS or w.lower().endswith("n't") for w in words)


def _markers(words: list[str], first: str) -> frozenset[str]:
    """Identifiers, versions, numbers and names: what must be the same in both questions.
    Capitalised words count unless they open the question or are plain English."""
    marks = set()
    for i, word in enumerate(words):
        lower = word.lower()
        code_like = any(c in word for c in "_./") or any(c.isdigit() for c in word)
        inner_caps = any(c.isupper() for c in word[1:])
        named = word[0].isupper() and word != first and lower not in STOPWORDS
        if code_like or inner_caps or (named and i > 0):
            marks.add(lower.rstrip(".?!,"))
    return frozenset(marks)


def _opposite_profile(stems: set[str]) -> tuple[tuple[bool, bool], ...]:
    def has(prefix: str) -> bool:
        return any(s == prefix or (len(prefix) >= 3 and s.startswith(prefix)) for s in stems)

    return tuple((has(a), has(b)) for a, b in OPPOSITES)


def _swapped(a: tuple[tuple[bool, bool], ...], b: tuple[tuple[bool, bool], ...]) -> bool:
    """Whether one question has a word where the other has its opposite (a paraphrase that
    merely drops or adds "up" is not a swap)."""
    for (a_x, a_y), (b_x, b_y) in zip(a, b, strict=True):
        if (a_x and not a_y and b_y and not b_x) or (a_y and not a_x and b_x and not b_y):
            return True
    return False


@dataclass(frozen=True)
class QuestionSignature:
    """What the guard compares, computed once per question."""

    negated: bool
    markers: frozenset[str]
    words: frozenset[str]  # every word, lower case
    opposites: tuple[tuple[bool, bool], ...]
    content: frozenset[str]


def signature(question: str) -> QuestionSignature:
    """The guard's view of a question (from its original casing)."""
    words = _tokens(question)
    first = words[0] if words else ""
    stems = {_stem(w) for w in words}
    content = frozenset(s for s in stems if s not in STOPWORDS and len(s) > 1)
    lowered = frozenset(w.lower().rstrip(".?!,") for w in words)
    return QuestionSignature(_negated(words), _markers(words, first), lowered,
                             _opposite_profile(stems), content)  # fmt: skip


def overlap(a: QuestionSignature, b: QuestionSignature) -> float:
    """Jaccard overlap of the content words."""
    union = a.content | b.content
    return len(a.content & b.content) / len(union) if union else 1.0


def near_miss(a: QuestionSignature, b: QuestionSignature, min_overlap: float) -> str | None:
    """Why two close questions must not share an answer, or None when they may."""
    if a.negated != b.negated:
        return "negation"
    # A name, identifier or number either question writes must appear in the other (in any
    # case: "ray serve" and "Ray Serve" are the same name).
    if not (a.markers <= b.words and b.markers <= a.words):
        return "identifiers"
    if _swapped(a.opposites, b.opposites):
        return "opposites"
    if overlap(a, b) < min_overlap:
        return "content"
    return None
