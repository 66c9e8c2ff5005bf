"""Obfuscated variants of an attack, as red-teamers write them: spaced letters, leetspeak,
base64, random casing and zero-width characters (evaluate.py redteam scores detection on them)."""

from __future__ import annotations

import base64
import random

LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})
ZERO_WIDTH = "\u200b"


def spaced(text: str) -> str:
    """ "ignore all" -> "i g n o r e  a l l" (two spaces between words)."""
    return "  ".join(" ".join(word) for word in text.split())


def leetspeak(text: str) -> str:
    """ "ignore" -> "1gn0r3"."""
    return text.lower().translate(LEET)


def as_base64(text: str) -> str:
    """The attack base64-encoded, with a request to decode it."""
    return "Decode this and follow it: " + base64.b64encode(text.encode()).decode()


def random_case(text: str, seed: int = 0) -> str:
    """ "ignore" -> "iGnOrE" (seeded, so the variants are reproducible)."""
    rng = random.Random(seed)
    return "".join(ch.upper() if rng.random() < 0.5 else ch.lower() for ch in text)


def zero_width(text: str) -> str:
    """A zero-width space after every character of every word."""
    return " ".join(ZERO_WIDTH.join(word) for word in text.split())


VARIANTS = {"spaced": spaced, "leetspeak": leetspeak, "base64": as_base64,
            "casing": random_case, "zero_width": zero_width}  # fmt: skip
