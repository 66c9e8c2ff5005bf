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
COURTESY = frozenset(("hi", "hello", "hey", "thank", "thanks", "thx", "pleas", "kindly"))
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
    for clitic in ("'s", "'re", "'m", "'ll", "'ve", "'d"):  # what's -> what
        if word.endswith(clitic):
            return word[: -len(clitic)]
    for suffix in ("ations", "ation", "ings", "ing", "ies", "ed", "es", "s", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _negations(words: list[str]) -> int:
    """How many negations the question holds ("not" added to a question that already has one
    still changes what it asks)."""
    return sum(w.lower() in NEGATIONS or w.lower().endswith("n't") for w in words)


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


def _opposite_profile(stems: list[str]) -> tuple[tuple[int, int], ...]:
    def count(prefix: str) -> int:
        return sum(s == prefix or (len(prefix) >= 3 and s.startswith(prefix)) for s in stems)

    return tuple((count(a), count(b)) for a, b in OPPOSITES)


def _swapped(a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]) -> bool:
    """Whether one question has a word where the other has its opposite: the pair's counts
    differ but their sum does not (a paraphrase that merely drops or adds "up" changes the
    sum, and is not a swap)."""
    return any(pa != pb and sum(pa) == sum(pb) for pa, pb in zip(a, b, strict=True))


@dataclass(frozen=True)
class QuestionSignature:
    """What the guard compares, computed once per question."""

    negations: int
    markers: frozenset[str]
    words: frozenset[str]  # every word, lower case
    opposites: tuple[tuple[int, int], ...]
    content: frozenset[str]


def signature(question: str) -> QuestionSignature:
    """The guard's view of a question (from its original casing)."""
    words = _tokens(question)
    first = words[0] if words else ""
    stem_list = [_stem(w) for w in words]
    stems = set(stem_list)
    # Negations are compared on their own; greetings and thanks ask nothing.
    content = frozenset(s for s in stems if s not in STOPWORDS and s not in NEGATIONS
                        and s not in COURTESY and not s.endswith("n't") and len(s) > 1)  # fmt: skip
    lowered = frozenset(w.lower().rstrip(".?!,") for w in words)
    return QuestionSignature(_negations(words), _markers(words, first), lowered,
                             _opposite_profile(stem_list), content)  # fmt: skip


def overlap(a: QuestionSignature, b: QuestionSignature) -> float:
    """Jaccard overlap of the content words."""
    union = a.content | b.content
    return len(a.content & b.content) / len(union) if union else 1.0


def near_miss(a: QuestionSignature, b: QuestionSignature, min_overlap: float) -> str | None:
    """Why two close questions must not share an answer, or None when they may."""
    if a.negations != b.negations:
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
