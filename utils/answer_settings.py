"""Settings of /ask's answer policy: prompt version, decoding, validation and refusal."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from utils.paths import PROMPTS_DIR


class DecodingSettings(BaseModel):
    """Sampling controls against loops. Server defaults; a prompt template's `decoding` block
    overrides them, and a request may override those within `DecodingLimits`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repetition_penalty: float = Field(
        default=1.0, ge=1.0, le=2.0, description="vLLM repetition penalty (1.0: off)."
    )
    frequency_penalty: float = Field(
        default=0.0, ge=0.0, le=2.0, description="OpenAI frequency penalty (0: off)."
    )
    presence_penalty: float = Field(
        default=0.0, ge=0.0, le=2.0, description="OpenAI presence penalty (0: off)."
    )
    stop: list[str] = Field(
        default_factory=list, max_length=8, description="Stop sequences (not in the answer)."
    )
    loop_ngram_tokens: int = Field(
        default=0,
        ge=0,
        le=64,
        description="vLLM's repetition detection: end generation when a pattern of up to this "
        "many tokens repeats `loop_min_count` times in a row (0: off).",
    )
    loop_min_count: int = Field(
        default=3, ge=2, le=20, description="Repeats that count as a loop (with the above)."
    )


class DecodingLimits(BaseModel):
    """The most a request may ask for: a client cannot turn the server's controls into
    something the engine or the answer checks were not measured with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_repetition_penalty: float = Field(default=1.5, ge=1.0, le=2.0)
    max_frequency_penalty: float = Field(default=1.0, ge=0.0, le=2.0)
    max_presence_penalty: float = Field(default=1.0, ge=0.0, le=2.0)


class ValidationSettings(BaseModel):
    """Checks a generated answer must pass before it leaves the service; otherwise the
    service answers extractively."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="False returns the model's text as is.")
    ngram: int = Field(default=6, ge=2, le=20, description="Word n-gram size for loop checks.")
    max_ngram_count: int = Field(
        default=2, ge=1, le=20, description="An n-gram seen more often than this is a loop."
    )
    min_groundedness: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Least share of answer sentences a retrieved chunk must support.",
    )
    require_citation: bool = Field(
        default=True, description="An answer must cite at least one retrieved source."
    )
    max_chars: int = Field(default=2000, ge=50, le=50_000, description="Longest answer kept.")
    max_sentences: int = Field(
        default=6,
        ge=1,
        le=200,
        description="Generation stops after this many sentences or lines (the prompt asks for "
        "two to four) and the answer keeps them: a runaway answer is cut, not sent.",
    )


class AnswerSettings(BaseModel):
    """How /ask turns retrieved chunks into an answer it can stand behind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_version: str = Field(default="answer-v3", description="Default prompt template.")
    prompts_dir: Path = Field(default=PROMPTS_DIR, description="Folder of prompt templates.")
    decoding: DecodingSettings = Field(default_factory=DecodingSettings)
    limits: DecodingLimits = Field(default_factory=DecodingLimits)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    min_relevance: float = Field(
        default=0.45,
        ge=-1.0,
        le=1.0,
        description="Refuse when no retrieved chunk's cosine similarity to the question "
        "reaches this (the question is not about the indexed docs). Chosen on the Ray docs dev "
        "set with all-MiniLM-L6-v2: 0.9% of dev questions refused, 73% of out-of-corpus ones "
        "(docs/benchmarks.md); another embedding model needs its own value.",
    )
    extractive_sentences: int = Field(
        default=3, ge=1, le=10, description="Sentences quoted by the extractive fallback."
    )
