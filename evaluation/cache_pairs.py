"""Labelled question pairs for the semantic cache, built from the dev questions.

Paraphrases (label 1: one cached answer fits both) rewrite a question without changing what it
asks: casing and punctuation, the question frame ("how do I" / "how can I" / "what is the way
to"), politeness, word order of a trailing phrase. Contrasts (label 0: sharing an answer would
be wrong) change what it asks while keeping most words: an opposite verb (enable / disable), a
negation, another Ray library, CPU / GPU, another number, one content word swapped for one
from another question; plus natural near neighbours, distinct dev questions whose embeddings
are close. Deterministic for a seed."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from ragcore.cache.near_miss import OPPOSITES, STOPWORDS

FRAMES = [("how do i ", "how can i "), ("how do i ", "what is the way to "),
          ("how can i ", "how do i "), ("how to ", "how do i "), ("how to ", "how can i "),
          ("what is ", "what's "), ("can i ", "is it possible to "),
          ("is it possible to ", "can i "), ("what are ", "which are ")]  # fmt: skip
POLITE = [("", " please"), ("please ", ""), ("hi, ", ""), ("", ", thanks")]
LIBRARIES = ["Ray Serve", "Ray Data", "Ray Train", "Ray Tune", "RLlib", "Ray Core"]
SWAPS = [("gpu", "cpu"), ("cpu", "gpu"), ("kubernetes", "slurm"), ("python", "java"),
         ("actor", "task"), ("task", "actor"), ("head node", "worker node"),
         ("worker node", "head node"), ("pytorch", "tensorflow"),
         ("tensorflow", "pytorch")]  # fmt: skip
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
_WORD = re.compile(r"[A-Za-z][A-Za-z_]{3,}")


@dataclass(frozen=True)
class Pair:
    """Two questions, whether one answer fits both, and how the pair was made."""

    a: str
    b: str
    label: int  # 1: paraphrase, 0: contrast
    kind: str


def _frame(q: str, rng: random.Random) -> str | None:
    low = q.lower()
    options = [(old, new) for old, new in FRAMES if low.startswith(old)]
    if not options:
        return None
    old, new = rng.choice(options)
    return new + q[len(old) :]


def paraphrases(q: str, rng: random.Random) -> list[Pair]:
    """Meaning-preserving rewrites of `q`."""
    out = [Pair(q, q.lower().rstrip("?. ") if q[0].isupper() or q.endswith("?")
                else q.capitalize() + "?", 1, "casing")]  # fmt: skip
    framed = _frame(q, rng)
    if framed:
        out.append(Pair(q, framed, 1, "frame"))
    pre, post = rng.choice(POLITE)
    body = q[len(pre) :] if pre and q.lower().startswith(pre) else q
    out.append(Pair(q, (pre if not q.lower().startswith(pre) else "") + body.rstrip("?") + post
                    + "?", 1, "politeness"))  # fmt: skip
    return [p for p in out if p.a.strip().lower() != p.b.strip().lower() or p.kind == "casing"]


def _swap_word(q: str, old: str, new: str) -> str | None:
    pattern = re.compile(rf"\b{re.escape(old)}", re.IGNORECASE)
    return pattern.sub(new, q, count=1) if pattern.search(q) else None


def contrasts(q: str, others: list[str], rng: random.Random) -> list[Pair]:
    """Rewrites of `q` that ask something else."""
    out: list[Pair] = []
    low = q.lower()
    for a, b in OPPOSITES:
        for old, new in ((a, b), (b, a)):
            if len(old) >= 3 and re.search(rf"\b{old}", low):
                # "enabl" -> "disabl": the rest of the word (e, ed, ing) is kept
                swapped = re.sub(rf"\b{old}", new, q, count=1, flags=re.IGNORECASE)
                out.append(Pair(q, swapped, 0, "opposite"))
                break
    for aux in (" do i ", " can i ", " does ", " is ", " should i "):
        if aux in low:
            i = low.index(aux) + len(aux)
            out.append(Pair(q, q[:i] + "not " + q[i:], 0, "negation"))
            break
    for lib in LIBRARIES:
        if lib.lower() in low:
            other = rng.choice([x for x in LIBRARIES if x != lib])
            out.append(Pair(q, re.sub(re.escape(lib), other, q, flags=re.IGNORECASE), 0,
                            "library"))  # fmt: skip
            break
    for old, new in SWAPS:
        entity = _swap_word(q, old, new)
        if entity:
            out.append(Pair(q, entity, 0, "entity"))
            break
    number = _NUMBER.search(q)
    if number:
        value = number.group(0)
        bumped = str(int(float(value)) + 1) if "." not in value else value + "1"
        out.append(Pair(q, q[: number.start()] + bumped + q[number.end() :], 0, "number"))
    words = [w for w in _WORD.findall(q) if w.lower() not in STOPWORDS]
    donors = [w for o in others for w in _WORD.findall(o) if w.lower() not in STOPWORDS]
    if words and donors:
        old = rng.choice(words)
        new = rng.choice([d for d in donors if d.lower() != old.lower()] or donors)
        out.append(Pair(q, q.replace(old, new, 1), 0, "word_swap"))
    return out


def build_pairs(questions: list[str], seed: int = 13) -> list[Pair]:
    """Paraphrase and contrast pairs for every question (natural neighbours are added by the
    benchmark, which has the embeddings)."""
    rng = random.Random(seed)
    pairs: list[Pair] = []
    for i, q in enumerate(questions):
        q = q.strip()
        others = questions[:i] + questions[i + 1 :]
        pairs.extend(paraphrases(q, rng))
        pairs.extend(contrasts(q, rng.sample(others, min(20, len(others))), rng))
    return pairs
