"""The answer policy: which prompt and decoding, when to refuse, and what a generated answer
must pass before the service returns it instead of an extractive one."""

from __future__ import annotations

from dataclasses import dataclass

from ragcore.answer_checks import (
    cut_at_repeat,
    limit_sentences,
    reason_code,
    trim_to_sentence,
    validate,
)
from ragcore.citations import ground_citations
from ragcore.extractive import REFUSAL_TEXT, extractive_answer
from ragcore.prompts import PromptTemplate, TemplateStore
from ragcore.protocols import AnswerMode, DecodingParams, Hit, Validation
from utils.answer_settings import AnswerSettings, DecodingSettings
from utils.errors import RequestRejectedError
from utils.settings import GeneratorSettings
from utils.variant_settings import VariantDecoding


@dataclass(frozen=True)
class AskOptions:
    """What a request may choose for its answer; None keeps the server's value."""

    prompt_version: str | None = None
    max_tokens: int | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None


@dataclass(frozen=True)
class FinishedAnswer:
    """The text the service stands behind, where it came from and the checks behind it."""

    text: str
    mode: AnswerMode
    citations: tuple[int, ...]
    validation: Validation | None
    stop_reason: str = ""
    message: str = ""
    reason: str = ""  # a stable label of why it is not a generated answer (metrics)


class AnswerPolicy:
    """Prompt, decoding, refusal, validation and fallback for /ask, from `AnswerSettings`."""

    def __init__(
        self,
        settings: AnswerSettings,
        generator: GeneratorSettings,
        templates: TemplateStore | None = None,
    ) -> None:
        self.settings = settings
        self.generator = generator
        self.templates = templates or TemplateStore(settings.prompts_dir)
        self.templates.get(settings.prompt_version)  # fail at start-up, not on a request

    def template(self, version: str | None) -> PromptTemplate:
        """The request's prompt version, or the default one."""
        return self.templates.get(version or self.settings.prompt_version)

    def decoding(
        self,
        template: PromptTemplate,
        options: AskOptions,
        variant: VariantDecoding | None = None,
    ) -> DecodingParams:
        """Settings, then the template's decoding block, then the variant's, then the
        request's, within limits."""
        merged = self.settings.decoding.model_dump()
        merged.update(template.decoding)
        own = {} if variant is None else variant.model_dump(exclude_none=True)
        merged.update({k: v for k, v in own.items() if k in DecodingSettings.model_fields})
        base = DecodingSettings.model_validate(merged)
        limits = self.settings.limits
        chosen = {
            "repetition_penalty": (options.repetition_penalty, limits.max_repetition_penalty),
            "frequency_penalty": (options.frequency_penalty, limits.max_frequency_penalty),
            "presence_penalty": (options.presence_penalty, limits.max_presence_penalty),
        }
        values = {name: getattr(base, name) for name in chosen}
        for name, (value, most) in chosen.items():
            if value is None:
                continue
            if value > most:
                raise RequestRejectedError(f"{name} {value} is above this server's limit {most}")
            values[name] = value
        return DecodingParams(
            max_tokens=options.max_tokens or own.get("max_tokens") or self.generator.max_tokens,
            temperature=own.get("temperature", self.generator.temperature),
            stop=tuple(base.stop),
            loop_ngram_tokens=base.loop_ngram_tokens,
            loop_min_count=base.loop_min_count,
            **values,
        )

    def relevant(self, hits: list[Hit]) -> bool:
        """Whether anything retrieved is close enough to the question to answer from."""
        return any(h.relevance >= self.settings.min_relevance for h in hits)

    def refusal(self) -> FinishedAnswer:
        """The plain answer for a question the docs do not cover."""
        return FinishedAnswer(REFUSAL_TEXT, "refused", (), None, "",
                              "nothing relevant was retrieved", "irrelevant")  # fmt: skip

    def extractive(
        self,
        question: str,
        hits: list[Hit],
        validation: Validation | None,
        stop: str,
        why: str,
        reason: str,
    ) -> FinishedAnswer:
        """Quote the best retrieved sentences instead of generating (or instead of a
        generated answer that failed `validation`)."""
        text, cited = extractive_answer(question, hits, self.settings.extractive_sentences)
        return FinishedAnswer(text, "extractive", cited, validation, stop, why, reason)

    def finish(
        self,
        question: str,
        raw: str,
        hits: list[Hit],
        stop_reason: str,
        template: PromptTemplate,
    ) -> FinishedAnswer:
        """Clean a generated answer (prompt echoes, a loop, a cut tail), ground its citations
        and check it; an answer that fails a check is replaced by the extractive one, and the
        reasons are kept."""
        contexts = [h.content for h in hits]
        checks = self.settings.validation
        if not checks.enabled:  # the model's text as it is, scored but not changed
            cited = ground_citations(raw, contexts, [h.source for h in hits], attribute=False)
            validation = validate(cited, contexts, checks)
            return FinishedAnswer(raw.strip(), "generated", cited.cited, validation, stop_reason)
        text = template.strip_scaffolding(raw)  # the prompt the answer was generated from
        text = trim_to_sentence(text) if stop_reason == "length" else text
        kept = cut_at_repeat(text, checks.ngram)
        if kept != text.rstrip():
            stop_reason = "repetition"
        if limit_sentences(kept, checks.max_sentences) != kept:
            kept, stop_reason = limit_sentences(kept, checks.max_sentences), "sentence_limit"
        cited = ground_citations(kept, contexts, [h.source for h in hits])
        validation = validate(cited, contexts, checks)
        if validation.passed:
            return FinishedAnswer(cited.text, "generated", cited.cited, validation, stop_reason)
        why = "the generated answer failed validation: " + "; ".join(validation.reasons)
        return self.extractive(question, hits, validation, stop_reason, why,
                               reason_code(validation.reasons[0]))  # fmt: skip
