"""A labelled PII set generated with Faker: realistic support questions (English and German)
with known entity spans, and PII recall and precision per entity of a redactor on it."""

from __future__ import annotations

import random
import string
from collections import Counter
from dataclasses import dataclass
from typing import Any

TEMPLATES = {
    "EMAIL_ADDRESS": ["My Ray job fails, can you email the fix to {}?",
                      "Schick mir bitte die Antwort an {}, mein Cluster startet nicht."],
    "PHONE_NUMBER": ["Call me at {} if the autoscaler keeps failing.",
                     "Meine Telefonnummer ist {}, der Ray-Head-Knoten stürzt ab."],
    "CREDIT_CARD": ["I was charged twice on card {} for the Anyscale cluster.",
                    "Meine Kreditkarte {} wurde für den Cluster belastet."],
    "IBAN_CODE": ["Refund the training job to IBAN {} please.",
                  "Bitte überweisen Sie die Erstattung auf {}."],
    "IP_ADDRESS": ["My Ray head node at {} refuses connections on port 6379.",
                   "Der Worker auf {} verbindet sich nicht mit dem Dashboard."],
    "US_SSN": ["For the billing form, my SSN is {}; how do I deploy Serve?"],
    "API_KEY": ["I set OPENAI_API_KEY={} but vLLM still asks for a key.",
                "My token {} leaked in the Serve logs, how do I hide it?"],
}  # fmt: skip
BENIGN = [
    "How do I set num_cpus=4 in Ray 2.9.3?",
    "pip install ray==2.60.0 fails on Python 3.13",
    "What does RAY_ADDRESS=auto do?",
    "Error code 0x80004005 when I start the dashboard on port 8265",
    "My tensor has shape (32, 128, 768); how do I batch it in Ray Data?",
    "Wie setze ich max_ongoing_requests=100 für eine Deployment-Replik?",
]


@dataclass(frozen=True)
class PiiItem:
    """A question and the (entity, value) pairs planted in it."""

    text: str
    planted: tuple[tuple[str, str], ...]


def _value(entity: str, fake: Any, rng: random.Random) -> str:
    de, en = fake["de_DE"], fake["en_US"]
    if entity == "EMAIL_ADDRESS":
        return str(rng.choice([en, de]).email())
    if entity == "PHONE_NUMBER":
        return str(rng.choice([en, de]).phone_number())
    if entity == "CREDIT_CARD":
        return str(en.credit_card_number())
    if entity == "IBAN_CODE":
        return str(rng.choice([de, fake["en_GB"]]).iban())
    if entity == "IP_ADDRESS":
        return str(en.ipv4() if rng.random() < 0.7 else en.ipv6())
    if entity == "US_SSN":
        return str(en.ssn())
    alphabet = string.ascii_letters + string.digits
    body = "".join(rng.choice(alphabet) for _ in range(40))
    return rng.choice(["sk-", "ghp_", "hf_"]) + body


def generate(n: int = 600, seed: int = 0) -> list[PiiItem]:
    """`n` questions, about one in ten without PII; seeded, so the set is reproducible."""
    from faker import Faker

    Faker.seed(seed)
    fake = Faker(["en_US", "de_DE", "en_GB"])
    rng = random.Random(seed)
    items = []
    for i in range(n):
        if i % 10 == 9:
            items.append(PiiItem(rng.choice(BENIGN), ()))
            continue
        entity = rng.choice(sorted(TEMPLATES))
        value = _value(entity, fake, rng)
        items.append(PiiItem(rng.choice(TEMPLATES[entity]).format(value), ((entity, value),)))
    return items


def score(items: list[PiiItem], find: Any) -> dict[str, dict[str, float]]:
    """Recall and precision per entity: a planted value counts as found when a detection of
    its entity overlaps it; a detection is correct when it overlaps a planted value of its
    entity. `find(text)` returns presidio-like results (entity_type, start, end)."""
    planted: Counter[str] = Counter()
    found: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    for item in items:
        results = find(item.text)
        spans = [(e, item.text.index(v), item.text.index(v) + len(v)) for e, v in item.planted]
        for entity, start, end in spans:
            planted[entity] += 1
            hits[entity] += any(r.entity_type == entity and r.start < end and start < r.end
                                for r in results)  # fmt: skip
        for r in results:
            found[r.entity_type] += 1
            correct[r.entity_type] += any(r.entity_type == e and r.start < end and s < r.end
                                          for e, s, end in spans)  # fmt: skip
    entities = sorted(set(planted) | set(found))
    return {
        e: {"planted": planted[e], "recall": hits[e] / planted[e] if planted[e] else 0.0,
            "detections": found[e], "precision": correct[e] / found[e] if found[e] else 1.0}
        for e in entities
    }  # fmt: skip
