"""Cache keys. Everything that can change an answer is in the scope, so an index swap, a new
variant or another tenant can never be served a stored answer: they look up other keys."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import asdict, dataclass

_SPACE = re.compile(r"\s+")
_TRAILING = re.compile(r"[\s?!.。？！]+$")


def normalize_question(text: str) -> str:
    """The question as the exact tier compares it: NFKC, case-folded, single spaces, without
    trailing punctuation ("How do I X?" and "how do i x" are one question)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _TRAILING.sub("", _SPACE.sub(" ", text).strip())


@dataclass(frozen=True)
class CacheScope:
    """What an answer depends on besides the question. `tenant` is "" without auth; every
    other field is the served value (the live index version, the variant's model, prompt,
    decoding and retrieval), never the requested one."""

    tenant: str
    collection: str
    index_version: str
    variant: str  # name@version
    model: str
    prompt_version: str
    decoding: str  # the DecodingParams, as text
    retrieval: str  # the fusion settings, as JSON
    top_k: int
    guards: str = ""  # GuardPipeline.fingerprint: stored answers passed these guards

    @property
    def digest(self) -> str:
        """The scope's id: the semantic tier compares questions only within one scope."""
        raw = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()

    def key(self, question: str) -> str:
        """The exact tier's key of a (normalized) question in this scope."""
        raw = f"{self.digest}\x00{question}"
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()
