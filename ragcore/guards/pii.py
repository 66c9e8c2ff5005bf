"""PII detection and redaction with presidio's pattern recognizers, offline.

presidio-analyzer is the field-standard library; its recognizers validate what a regex alone
cannot (Luhn for cards, the IBAN checksum, `phonenumbers` for phones, check digits for German
ids). No NER model: none ships on PyPI (spaCy's models come from GitHub), and the entities we
must catch are all pattern entities. A blank spaCy pipeline gives presidio its tokens, with
lower-cased lemmas so that context words ("phone", "Telefon") still raise scores."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN",
            "DE_TAX_ID", "DE_ID_CARD", "API_KEY")  # fmt: skip
LANGUAGES = ("en", "de")
# Vendor key shapes, key=value secrets and JWTs. presidio compiles with the `regex` module,
# which allows the variable-width look-behind.
SECRET_PATTERNS = [
    ("vendor key", r"\b(?:sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{36,}|AKIA[0-9A-Z]{16}|"
                   r"xox[baprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|hf_[A-Za-z0-9]{30,}|"
                   r"rk-[A-Za-z0-9_-]{40,})\b", 0.9),
    ("key=value", r"(?i)(?<=(?:api[_-]?key|token|secret|password|passwd)[\"']?\s*[:=]\s*[\"']?)"
                  r"[A-Za-z0-9_\-./+=]{12,}", 0.8),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}", 0.9),
]  # fmt: skip
PHONE_CONTEXT = {"en": None, "de": ["telefon", "tel", "handy", "mobil", "rufnummer", "phone"]}
# Phone shapes that `phonenumbers` rejects when the area code is unassigned or an extension
# follows, which a redactor must still catch: North American with an optional extension,
# international with a leading + or 00, German with a leading 0 area code.
PHONE_PATTERNS = [
    ("north american", r"(?<![\w.])(?:\+?1[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}"
                       r"(?:\s*(?:x|ext\.?)\s*\d{1,6})?(?![\w.])", 0.5),
    ("international", r"(?<![\w.])(?:\+|00)\d{1,3}[ .-]?(?:\(\d{1,5}\)[ .-]?)?\d{2,5}"
                      r"(?:[ .-]?\d{2,6}){1,3}(?:\s*(?:x|ext\.?)\s*\d{1,6})?(?![\w.])", 0.5),
    ("german", r"(?<![\w.])\(?0\d{2,5}\)?[ /-]?\d{3,9}(?:[ -]\d{1,5})?(?![\w.])", 0.4),
]  # fmt: skip
# Card numbers of 12 to 19 digits from the issuer ranges (Visa, Mastercard incl. the 2-series,
# Amex, JCB, Diners, Discover, Maestro), kept only when the Luhn check passes.
CARD_PATTERN = r"(?<![\w.])(?:2[2-7]|3[0-8]|4\d|5[0-9]|6\d)\d(?:[ -]?\d){9,16}(?![\w.])"
# When detections overlap, the more specific entity wins (an IP or SSN is no phone).
PRIORITY = {"IBAN_CODE": 0, "CREDIT_CARD": 1, "API_KEY": 2, "EMAIL_ADDRESS": 3, "US_SSN": 4,
            "DE_TAX_ID": 5, "DE_ID_CARD": 6, "IP_ADDRESS": 7, "PHONE_NUMBER": 8}  # fmt: skip


@dataclass(frozen=True)
class Redaction:
    """The text with each entity replaced by `<ENTITY>`, and the entities found."""

    text: str
    entities: tuple[str, ...]


def _engine() -> tuple[Any, Any]:
    """presidio's analyzer (pattern recognizers, en + de) and anonymizer."""
    import spacy
    import tldextract
    import tldextract.tldextract as tld_module
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer import predefined_recognizers as known
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_anonymizer import AnonymizerEngine
    from spacy.language import Language

    # The email recognizer asks tldextract, which would fetch the public-suffix list over
    # HTTP on first use: the bundled snapshot only.
    tld_module.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    if "lower_lemma" not in Language.factories:

        @Language.component("lower_lemma")
        def lower_lemma(doc: Any) -> Any:
            for token in doc:
                token.lemma_ = token.lower_
            return doc

    class BlankNlpEngine(SpacyNlpEngine):
        def load(self) -> None:
            models = {lang: spacy.blank(lang) for lang in LANGUAGES}
            for nlp in models.values():
                nlp.add_pipe("lower_lemma")
            self.nlp = models  # type: ignore[assignment]

    class IpRecognizer(known.IpRecognizer):
        def invalidate_result(self, pattern_text: str) -> bool:
            # Loopback and "any" addresses name no one; documentation quotes them often.
            return is_loopback(pattern_text) or bool(super().invalidate_result(pattern_text))

    class LuhnCardRecognizer(PatternRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return luhn_valid(pattern_text)

    registry = RecognizerRegistry(supported_languages=list(LANGUAGES))
    secrets = [Pattern(name, regex, score) for name, regex, score in SECRET_PATTERNS]
    for lang in LANGUAGES:
        pattern_recognizers = (known.EmailRecognizer, known.CreditCardRecognizer,
                               known.IbanRecognizer, IpRecognizer,
                               known.UsSsnRecognizer)  # fmt: skip
        for recognizer in pattern_recognizers:
            registry.add_recognizer(recognizer(supported_language=lang))
        registry.add_recognizer(known.PhoneRecognizer(
            supported_language=lang, context=PHONE_CONTEXT[lang],
            supported_regions=("DE", "US", "GB", "AT", "CH", "FR")))  # fmt: skip
        registry.add_recognizer(PatternRecognizer(
            supported_entity="API_KEY", supported_language=lang, patterns=secrets,
            name="ApiKeyRecognizer", context=["key", "token", "secret", "password"]))  # fmt: skip
    for lang in LANGUAGES:
        registry.add_recognizer(PatternRecognizer(
            supported_entity="PHONE_NUMBER", supported_language=lang, name="PhoneShapes",
            patterns=[Pattern(n, r, sc) for n, r, sc in PHONE_PATTERNS]))  # fmt: skip
        registry.add_recognizer(LuhnCardRecognizer(
            supported_entity="CREDIT_CARD", supported_language=lang, name="LuhnCards",
            patterns=[Pattern("card", CARD_PATTERN, 0.3)]))  # fmt: skip
    registry.add_recognizer(known.DeTaxIdRecognizer())
    registry.add_recognizer(known.DeIdCardRecognizer())
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=BlankNlpEngine(),
                              supported_languages=list(LANGUAGES))  # fmt: skip
    return analyzer, AnonymizerEngine()


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1, 0.0.0.0 and :: (an address with a port or prefix is read without)."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(address.split("/")[0])
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def luhn_valid(number: str) -> bool:
    """The Luhn checksum of the digits in `number`."""
    digits = [int(ch) for ch in number if ch.isdigit()]
    total = 0
    for i, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if i % 2 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return len(digits) >= 12 and total % 10 == 0


class PiiRedactor:
    """Finds and replaces PII in English and German text (both languages' recognizers run
    on every text: a German question may hold an English-format phone number)."""

    def __init__(self, threshold: float = 0.4) -> None:
        # presidio's debug lines quote the text they analyse: never let them reach a log.
        for name in ("presidio-analyzer", "presidio-anonymizer"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.threshold = threshold
        self.analyzer, self.anonymizer = _engine()
        self.redact("warm up: a@b.de")  # the first call loads tldextract's list (~90 ms)

    def find(self, text: str) -> list[Any]:
        """presidio's results over both languages, without overlaps: of overlapping
        detections the more specific entity (PRIORITY), then the higher score, is kept."""
        found = [r for lang in LANGUAGES
                 for r in self.analyzer.analyze(text, language=lang, entities=list(ENTITIES),
                                                score_threshold=self.threshold)]  # fmt: skip
        found.sort(key=lambda r: (PRIORITY.get(r.entity_type, 99), -r.score, r.start))
        kept: list[Any] = []
        for result in found:
            if all(result.end <= k.start or k.end <= result.start for k in kept):
                kept.append(result)
        return sorted(kept, key=lambda r: r.start)

    def redact(self, text: str) -> Redaction:
        """`text` with every entity found replaced by `<ENTITY>`."""
        results = self.find(text)
        if not results:
            return Redaction(text, ())
        anonymized = self.anonymizer.anonymize(text=text, analyzer_results=results)
        return Redaction(anonymized.text, tuple(sorted({r.entity_type for r in results})))
