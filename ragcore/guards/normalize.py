"""Undo the usual obfuscations before detection: Unicode tricks, zero-width characters,
spaced-out letters, leetspeak, and base64 or hex blobs (decoded and scanned as well)."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass

ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"), None)
# Three or more single letters, each separated by one space, dot, dash, star or underscore:
# "i g n o r e  a l l" (two spaces end a word), "i.g.n.o.r.e". Letters only, so versions
# such as "2.9.3" stay as they are.
SPACED = re.compile(r"(?<![^\W\d_])[^\W\d_](?:[ ._*\-][^\W\d_]){2,}(?![^\W\d_])")
LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                      "$": "s", "!": "i"})  # fmt: skip
LEET_WORD = re.compile(r"(?<![\w@$!])(?=[\w@$!]*[a-z])(?=[\w@$!]*[0-9@$!])[\w@$!]{2,}", re.I)
SHORT_NUMBER = re.compile(r"(?<![\w.])\d{1,3}(?![\w.])")  # "70 act 45 4" in a leetspeak text
BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
# Six or more single letters apart, however they are spaced: "i g n o r e p r e v i o u s"
# once a cleaner has collapsed the double spaces that ended each word.
LETTER_RUN = re.compile(r"(?<![^\W\d_])(?:[^\W\d_][ ._*\-]+){5,}[^\W\d_](?![^\W\d_])")
HEX = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){8,}(?![0-9A-Fa-f])")


@dataclass(frozen=True)
class Normalized:
    """The text as detectors should read it, the plain casefolded text, and any decoded
    blobs to scan too."""

    text: str
    decoded: tuple[str, ...] = ()
    plain: str = ""
    runs: tuple[str, ...] = ()  # spaced-out letter runs, joined with no word breaks
    readable: str = ""  # the canonical text with blobs replaced by their payloads

    @property
    def views(self) -> tuple[str, ...]:
        """Everything to scan: the normalized text first."""
        extra = (self.plain,) if self.plain and self.plain != self.text else ()
        return (self.text, *extra, *self.decoded)


def _printable(raw: bytes) -> str | None:
    """`raw` as text when it looks like text (an attack hidden in base64), else None."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    letters = sum(ch.isalpha() or ch.isspace() for ch in text)
    return text if text and letters / len(text) > 0.8 else None


def _base64_payload(blob: str) -> str | None:
    try:
        raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return _printable(raw)


def _hex_payload(blob: str) -> str | None:
    return _printable(bytes.fromhex(blob))


def decode_blobs(text: str) -> list[str]:
    """The readable payloads of base64 and hex blobs in `text`."""
    found = [_base64_payload(blob) for blob in BASE64.findall(text)]
    found += [_hex_payload(blob) for blob in HEX.findall(text)]
    return [payload for payload in found if payload is not None]


def with_payloads(text: str) -> str:
    """`text` with each readable blob replaced by its payload: what a classifier should read.
    An encoded question reads as the question, not as the random-looking letters of its
    encoding (which would look like an attack whatever they say)."""
    text = BASE64.sub(lambda m: _base64_payload(m.group(0)) or m.group(0), text)
    return HEX.sub(lambda m: _hex_payload(m.group(0)) or m.group(0), text)


def _unspace(match: re.Match[str]) -> str:
    return re.sub(r"[ ._\-*]", "", match.group(0))


def _spaced_out(text: str) -> bool:
    """Most tokens are single characters: the whole text is written letter by letter."""
    tokens = text.split()
    return len(tokens) >= 6 and sum(len(t) == 1 for t in tokens) > 0.6 * len(tokens)


def _join_letters(text: str) -> str:
    """A spaced-out text back to words: one space separates letters, two or more words."""
    return " ".join(word.replace(" ", "") for word in re.split(r"\s{2,}", text))


def _leet_heavy(text: str) -> bool:
    words = text.split()
    return bool(words) and sum(bool(LEET_WORD.fullmatch(w)) for w in words) > 0.3 * len(words)


def canonical(text: str) -> str:
    """NFKC, no zero-width characters, spaced letters joined, leetspeak undone, casefolded,
    whitespace collapsed. A view for detection only, never what the model sees, so it may
    change an identifier: a text written mostly in leetspeak is read as leetspeak throughout,
    otherwise only words with two or more letters are ("v2" and "x64" stay)."""
    text = unicodedata.normalize("NFKC", text).translate(ZERO_WIDTH)
    text = _join_letters(text) if _spaced_out(text) else SPACED.sub(_unspace, text)
    heavy = _leet_heavy(text)

    def unleet(match: re.Match[str]) -> str:
        word = match.group(0)
        return word.translate(LEET) if heavy or sum(ch.isalpha() for ch in word) >= 2 else word

    text = LEET_WORD.sub(unleet, text)
    if heavy:
        text = SHORT_NUMBER.sub(lambda m: m.group(0).translate(LEET), text)
    return " ".join(text.casefold().split())


def normalize(text: str, max_chars: int = 8000) -> Normalized:
    """What the detectors scan: the canonical text and the canonical decoded blobs."""
    text = text[:max_chars]
    cleaned = unicodedata.normalize("NFKC", text).translate(ZERO_WIDTH)
    decoded = tuple(canonical(d) for d in decode_blobs(cleaned))
    runs = tuple(
        re.sub(r"[\W\d_]", "", m.group(0)) for m in LETTER_RUN.finditer(cleaned.casefold())
    )
    text = canonical(cleaned)
    readable = canonical(with_payloads(cleaned)) if decoded else text
    return Normalized(text, decoded, " ".join(cleaned.casefold().split()), runs, readable)
