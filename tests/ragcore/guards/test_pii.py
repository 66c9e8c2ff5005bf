"""PII redaction: presidio's pattern recognizers (offline) plus our card, phone and secret
shapes; recall and precision per entity on a Faker-generated labelled set."""

from __future__ import annotations

import pytest

from evaluation.pii_set import generate, score
from ragcore.guards.pii import PiiRedactor, luhn_valid


@pytest.fixture(scope="module")
def redactor() -> PiiRedactor:
    return PiiRedactor()


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("Mail jane.doe@example.com the logs", "EMAIL_ADDRESS"),
        ("Ruf mich an: +49 30 1234567", "PHONE_NUMBER"),
        ("Call (296)911-6116x20766 after six", "PHONE_NUMBER"),
        ("Card 4111 1111 1111 1111 was charged", "CREDIT_CARD"),
        ("IBAN DE89370400440532013000 please", "IBAN_CODE"),
        ("Head node at 10.0.0.12:6379", "IP_ADDRESS"),
        ("SSN 536-22-1234 on the form", "US_SSN"),
        ("Meine Steuer-ID ist 86095742719", "DE_TAX_ID"),
        ("OPENAI_API_KEY=sk-abcdefghijklmnopqrstuvwxyz123456", "API_KEY"),
    ],
)
def test_each_entity_is_redacted(redactor: PiiRedactor, text: str, entity: str) -> None:
    redaction = redactor.redact(text)
    assert entity in redaction.entities and f"<{entity}>" in redaction.text


@pytest.mark.parametrize(
    "text",
    [
        "How do I set num_cpus=4 in Ray 2.9.3?",
        "pip install ray==2.60.0 and RAY_ADDRESS=auto",
        "ray job 1700000000123 failed with error 0x80004005 on port 8265",
        "My tensor has shape (32, 128, 768); the run was on 2023-10-12",
        "Open http://127.0.0.1:8000/docs or bind to 0.0.0.0",
    ],
)
def test_documentation_text_is_left_alone(redactor: PiiRedactor, text: str) -> None:
    assert redactor.redact(text).text == text


def test_luhn() -> None:
    assert luhn_valid("4111 1111 1111 1111") and not luhn_valid("4111 1111 1111 1112")
    assert not luhn_valid("0000")  # too short for a card


def test_recall_and_precision_per_entity_on_the_generated_set(redactor: PiiRedactor) -> None:
    items = generate(600, seed=0)
    assert len(items) == 600 and sum(bool(i.planted) for i in items) >= 500
    report = score(items, redactor.find)
    # Measured 2026-11-24: recall 1.0 for every entity but cards 0.983 and phones 0.964;
    # precision 1.0 for all.
    assert all(r["recall"] >= 0.95 for r in report.values()), report
    assert all(r["precision"] >= 0.97 for r in report.values()), report
