"""Word-overlap grounding: which retrieved chunk supports which answer sentence.

One measure for the service's answer validation, its citation repair and `evaluate.py
answers`, so the number the service checks is the number the evaluation reports.
"""

from __future__ import annotations

import re

from ragcore.bm25 import STOPWORDS

_WORD_RE = re.compile(r"[a-z0-9]+(?:[._\-][a-z0-9]+)*")
# A sentence ends at . ! ? followed by space (not inside `ray.init`), or at a line break.
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+|\n+")
_CITATION_RE = re.compile(r"\[\d{1,3}(?:\s*,\s*\d{1,3})*\]")
# The BM25 stop words plus auxiliaries: overlap is measured on words that carry content.
_STOP = STOPWORDS | {"has", "have"}
SUPPORT_THRESHOLD = 0.6  # share of a sentence's content words a chunk must contain


_CODE_RE = re.compile(
    r"[{}<>=;$]|\s--?[a-z]|^\s*[\w.]+\(.*\)\W*$|^\s*(?:import|from|def|class|\$|>>>|#|"
    r"python|pip|ray|make|curl|serve|kubectl|docker|export|cd)\s"
)


def looks_like_code(line: str) -> bool:
    """A code line, a shell command or a comment, not prose: never quoted as a claim or given a
    citation (a "[2]" inside code breaks it)."""
    return bool(_CODE_RE.search(line)) or line.count("`") > 6


def content_words(text: str) -> set[str]:
    """Lower-cased words minus stop words and citation numbers: what overlap is measured on."""
    return {w for w in _WORD_RE.findall(_CITATION_RE.sub(" ", text).lower()) if w not in _STOP}


def split_sentences(text: str) -> list[str]:
    """Every non-empty sentence or line of `text`, in order."""
    return [s.strip() for s in _SENTENCE_RE.split(text) if s and s.strip()]


def sentences(text: str) -> list[str]:
    """Answer sentences with at least three content words (shorter ones carry no claim)."""
    return [s for s in split_sentences(text) if len(content_words(s)) >= 3]


def support(sentence: str, chunk_words: list[set[str]]) -> tuple[int, float]:
    """The chunk that best supports `sentence` (its index) and the share of the sentence's
    content words it contains; (-1, 0.0) when there is nothing to compare."""
    words = content_words(sentence)
    if not words or not chunk_words:
        return -1, 0.0
    shares = [len(words & cw) / len(words) for cw in chunk_words]
    best = max(range(len(shares)), key=shares.__getitem__)
    return best, shares[best]


def supported_share(answer: str, contexts: list[str]) -> float:
    """Share of the answer's sentences whose content words a single retrieved chunk mostly
    contains (>= SUPPORT_THRESHOLD). 1.0 for an answer with no claim-bearing sentence."""
    claims = sentences(answer)
    if not claims:
        return 1.0
    chunk_words = [content_words(c) for c in contexts]
    supported = sum(support(claim, chunk_words)[1] >= SUPPORT_THRESHOLD for claim in claims)
    return supported / len(claims)
