"""Citations that point at real sources, and no URL the sources do not have.

The prompt numbers the retrieved chunks [1]..[n]. A small model cites numbers that were never
retrieved, cites nothing, or writes URLs from memory. `ground_citations` fixes each sentence
from evidence: an out-of-range number becomes the chunk that supports the sentence (or goes),
and an uncited sentence that a chunk supports gets that chunk's number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ragcore.grounding import SUPPORT_THRESHOLD, content_words, looks_like_code, support
from utils.urls import page_key

# [1], [1, 2], [Source 1], [passage 2]: what small models write for "cite like [1]".
CITATION_RE = re.compile(
    r"\[(?:(?:source|passage|doc(?:ument)?)\s*)?(\d{1,3}(?:\s*,\s*\d{1,3})*)\]", re.I
)
URL_RE = re.compile(r"https?://[^\s<>\"'`)\]]+")
_MD_LINK_RE = re.compile(r"\[([^\]\n]{0,200})\]\((https?://[^\s)]+)\)")
_SENTENCE_SPLIT_RE = re.compile(r"((?<=[.!?])[ \t]+|\n+)")
_TRAILING_PUNCT_RE = re.compile(r"([.!?:;,]*)$")


@dataclass(frozen=True)
class CitedText:
    """An answer after citation grounding and URL stripping."""

    text: str
    cited: tuple[int, ...]  # source numbers in order of first citation
    invalid: int  # numbers the model wrote that no retrieved source has
    repaired: int  # of those, replaced by the number of the supporting source
    attributed: int  # citations added to supported sentences that cited nothing
    urls_removed: int


def allowed_pages(sources: list[str]) -> set[str]:
    """The page keys a URL in an answer may point at: the retrieved sources' pages."""
    return {page_key(s) for s in sources}


def _allowed(url: str, pages: set[str]) -> bool:
    return page_key(url.rstrip(".,;:!?")) in pages


def strip_urls(text: str, pages: set[str]) -> tuple[str, int]:
    """`text` without URLs outside `pages` (a Markdown link keeps its text); and how many
    were removed."""
    removed = 0

    def link(match: re.Match[str]) -> str:
        nonlocal removed
        if _allowed(match.group(2), pages):
            return match.group(0)
        removed += 1
        return match.group(1)

    def bare(match: re.Match[str]) -> str:
        nonlocal removed
        if _allowed(match.group(0), pages):
            return match.group(0)
        removed += 1
        return ""

    text = URL_RE.sub(bare, _MD_LINK_RE.sub(link, text))
    if removed:
        # What a removed URL leaves behind: "see ()", "at <>", doubled spaces, " ."
        text = re.sub(r"\(\s*\)|<\s*>|`\s*`", "", text)
        text = re.sub(r"[ \t]{2,}", " ", text)
        text = re.sub(r" +([.,;:!?])", r"\1", text)
    return text, removed


def _numbers(group: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", group)]


def cited_numbers(text: str) -> list[int]:
    """Every number `text` cites, as written ([1], [1, 2], [Source 3]), repeats included."""
    return [n for match in CITATION_RE.finditer(text) for n in _numbers(match.group(1))]


class _SentenceFixer:
    """Grounds the citations of one answer, sentence by sentence."""

    def __init__(self, contexts: list[str], attribute: bool) -> None:
        self.count = len(contexts)
        self.chunk_words = [content_words(c) for c in contexts]
        self.attribute = attribute
        self.invalid = self.repaired = self.attributed = 0

    def fix(self, sentence: str) -> str:
        best, share = support(sentence, self.chunk_words)
        supporting = best + 1 if share >= SUPPORT_THRESHOLD else None
        kept_any = False

        def replace(match: re.Match[str]) -> str:
            nonlocal kept_any
            kept: list[int] = []
            for n in _numbers(match.group(1)):
                if not 1 <= n <= self.count:
                    self.invalid += 1
                    if supporting is None:
                        continue
                    self.repaired += 1
                    n = supporting
                if n not in kept:
                    kept.append(n)
            kept_any = kept_any or bool(kept)
            return "".join(f"[{n}]" for n in kept)

        fixed = CITATION_RE.sub(replace, sentence)
        fixed = re.sub(r"(\[\d+\])(?:\s*\1)+", r"\1", fixed)  # [1][1] -> [1]
        fixed = re.sub(r"[ \t]+([.!?,;:])", r"\1", fixed)
        prose = len(content_words(fixed)) >= 3 and not looks_like_code(fixed)
        if not kept_any and self.attribute and supporting and prose:
            self.attributed += 1
            punct = _TRAILING_PUNCT_RE.search(fixed.rstrip())
            body = fixed.rstrip()[: punct.start()] if punct else fixed.rstrip()
            fixed = f"{body} [{supporting}]{punct.group(1) if punct else ''}"
        return fixed


def ground_citations(
    text: str, contexts: list[str], sources: list[str], attribute: bool = True
) -> CitedText:
    """Strip URLs that are not among `sources`, then repair or drop citations to numbers
    outside 1..len(contexts) and (with `attribute`) cite the supporting chunk of each
    uncited, supported sentence. `contexts[i]` is the text of source number i + 1."""
    text, urls_removed = strip_urls(text, allowed_pages(sources))
    fixer = _SentenceFixer(contexts, attribute)
    pieces = _SENTENCE_SPLIT_RE.split(text)
    # Even indexes are sentences, odd ones the whitespace between them (kept as written).
    fixed = "".join(p if i % 2 else fixer.fix(p) for i, p in enumerate(pieces)).strip()
    cited = tuple(dict.fromkeys(cited_numbers(fixed)))  # in order of first citation
    return CitedText(fixed, cited, fixer.invalid, fixer.repaired, fixer.attributed,
                     urls_removed)  # fmt: skip
