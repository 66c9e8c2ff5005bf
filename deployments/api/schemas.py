"""HTTP request and response models, and the mapping from the service's domain objects."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
)

from ragcore.answering import AskOptions
from ragcore.protocols import Answer, Hit
from ragcore.tenancy.stores import DayUsage
from utils.auth_settings import NAME_RE

MAX_QUERY_CHARS = 2000
MAX_K = 50
COLLECTION_FIELD = Field(
    default=None,
    pattern=NAME_RE.pattern,
    description="Collection to read; default: the API key's first collection (the service's "
    "default collection without auth). A collection outside the key's list gets 403.",
)


def _strip_query(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty or only whitespace")
    return value


class SearchParams(BaseModel):
    """Query parameters of GET /search (strings in the URL, converted)."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="What to look for.")
    k: int | None = Field(
        default=None, ge=1, le=MAX_K,
        description="How many chunks to return; default: the variant's top_k (5).",
    )  # fmt: skip
    collection: str | None = COLLECTION_FIELD

    @field_validator("query")
    @classmethod
    def _strip(cls, value: str) -> str:
        return _strip_query(value)


class SearchRequest(SearchParams):
    """Body of POST /search: the same fields as JSON, where `k` must be a JSON integer (not
    `true` or `"5"`)."""

    k: StrictInt | None = Field(
        default=None, ge=1, le=MAX_K,
        description="How many chunks to return; default: the variant's top_k (5).",
    )  # fmt: skip


class SearchHit(BaseModel):
    """One retrieved chunk."""

    content: str = Field(description="The chunk text.")
    source: str = Field(description="Page URL plus #section anchor.")
    score: float = Field(description="Fused relevance score (higher is better).")
    title: str = Field(default="", description="Page title > section title.")


class SearchResponse(BaseModel):
    """The search contract of the book's service, plus the request id."""

    results: list[SearchHit]
    status: Literal["ok", "error"] = "ok"
    message: str = ""
    request_id: str = ""
    variant: str = Field(default="", description="The variant that served it, name@version.")


class AskRequest(BaseModel):
    """Body of POST /ask and POST /ask/stream."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(
        min_length=1, max_length=MAX_QUERY_CHARS, description="The question to answer."
    )
    top_k: StrictInt | None = Field(
        default=None, ge=1, le=20,
        description="Chunks given to the model; default: the variant's top_k (5).",
    )  # fmt: skip
    collection: str | None = COLLECTION_FIELD
    max_tokens: StrictInt | None = Field(
        default=None, ge=1, le=2048, description="Answer length cap; default from settings."
    )
    prompt_version: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Prompt template version (prompts/*.yaml); default from settings. "
        "An unknown version gets a 422 listing the known ones.",
    )
    repetition_penalty: StrictFloat | None = Field(
        default=None, ge=1.0, le=2.0,
        description="Decoding override; the server rejects values above its limit (422).",
    )  # fmt: skip
    frequency_penalty: StrictFloat | None = Field(
        default=None, ge=0.0, le=2.0,
        description="Decoding override; the server rejects values above its limit (422).",
    )  # fmt: skip
    presence_penalty: StrictFloat | None = Field(
        default=None, ge=0.0, le=2.0,
        description="Decoding override; the server rejects values above its limit (422).",
    )  # fmt: skip

    def options(self) -> AskOptions:
        """The answer options this request chose."""
        return AskOptions(self.prompt_version, self.max_tokens, self.repetition_penalty,
                          self.frequency_penalty, self.presence_penalty)  # fmt: skip

    @field_validator("question")
    @classmethod
    def _strip(cls, value: str) -> str:
        return _strip_query(value)


class Source(BaseModel):
    """A retrieved chunk the answer may cite, numbered as in the prompt ([1], [2], ...)."""

    number: int = Field(description="The [n] that cites this chunk.")
    source: str = Field(description="Page URL plus #section anchor.")
    content: str
    score: float = Field(description="Fused retrieval score (higher is better).")
    title: str = Field(default="", description="Page title.")
    section: str = Field(default="", description="Section title.")


class Citation(BaseModel):
    """A source the answer cites."""

    number: int = Field(description="The [n] used in the answer text.")
    url: str = Field(description="Page URL plus #section anchor.")
    title: str = Field(description="Page title.")
    section: str = Field(description="Section title.")
    score: float = Field(description="Fused retrieval score.")


class ValidationReport(BaseModel):
    """The checks the generated answer went through, with their scores."""

    passed: bool
    reasons: list[str] = Field(description="Each failed check, e.g. 'repetition: ...'.")
    max_ngram_count: int = Field(description="Most repeats of one 6-word sequence.")
    groundedness: float = Field(description="Share of sentences a retrieved chunk supports.")
    valid_citations: int
    invalid_citations: int = Field(description="Cited numbers that were not retrieved.")
    urls_removed: int = Field(description="URLs the model wrote that are not among sources.")
    chars: int


class TokenUsage(BaseModel):
    """Token counts reported by the engine."""

    prompt: int = 0
    completion: int = 0
    total: int = 0


class AskResponse(BaseModel):
    """An answer with its sources. `answer_mode`: `generated` (passed validation),
    `extractive` (quoted retrieved sentences, because the generated answer failed a check or
    the generator is down) or `refused` (nothing relevant was retrieved). `status` is
    "degraded" when the generator failed or is disabled."""

    answer: str
    answer_mode: Literal["generated", "extractive", "refused"] = "generated"
    citations: list[Citation] = Field(description="The sources the answer cites.")
    sources: list[Source] = Field(description="Everything retrieved, numbered as in the prompt.")
    validation: ValidationReport | None = Field(
        default=None, description="Checks of the generated answer; null if none was generated."
    )
    prompt_version: str = ""
    stop_reason: str = Field(
        default="", description="Why generation ended: stop, length, repetition or error."
    )
    tokens_used: TokenUsage
    latency_ms: float
    request_id: str
    status: Literal["ok", "degraded"] = "ok"
    message: str = ""
    variant: str = Field(default="", description="The variant that served it, name@version.")
    answer_path: Literal[
        "generator", "fallback_generator", "fallback_extractive", "cache", "none"
    ] = Field(
        default="generator",
        description="What answered: the variant's engine; another engine after it failed; "
        "the retrieved sentences after every engine failed or had its circuit open; the "
        "cache; or none (a refusal, or no generator configured).",
    )
    engine: str = Field(default="", description="The engine that generated the answer.")
    cache: Literal["exact", "semantic"] | None = Field(
        default=None, description="Set when the answer came from the cache, by tier."
    )
    tokens_saved: int = Field(
        default=0, description="A cache hit: the generator tokens its first answer cost."
    )


class ErrorResponse(BaseModel):
    """Every non-2xx answer: what went wrong and what to do, never a traceback."""

    status: Literal["error"] = "error"
    message: str
    request_id: str = ""
    reason: str = Field(
        default="", description="A guard's code, e.g. prompt_injection:instruction_override."
    )


class FieldError(BaseModel):
    """One invalid field of a request."""

    field: str
    message: str


class ValidationErrorResponse(ErrorResponse):
    """A 422: the request's fields that failed validation."""

    errors: list[FieldError] = Field(default_factory=list)


class Readyz(BaseModel):
    """Readiness with the reason when not ready, and what is loaded."""

    model_config = ConfigDict(extra="allow")

    ready: bool
    reason: str = ""


class ChatCompletionBody(BaseModel):
    """The OpenAI chat-completions body: the fields checked here, any other OpenAI field is
    passed on to the engine, which validates the rest."""

    model_config = ConfigDict(extra="allow")

    messages: list[dict[str, Any]] = Field(min_length=1, description="{role, content} objects.")
    model: str | None = Field(default=None, description="Defaults to the served model.")
    stream: StrictBool = Field(default=False, description="Stream chunks as Server-Sent Events.")
    max_tokens: StrictInt | None = Field(default=None, ge=1, le=4096, description="Completion cap.")


class ModelCard(BaseModel):
    """One entry of GET /v1/models (OpenAI's shape)."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "ray-rag"


class ModelList(BaseModel):
    """GET /v1/models (OpenAI's shape)."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class UsageDay(BaseModel):
    """A tenant's totals for one UTC day and route."""

    day: str = Field(description="UTC day, YYYY-MM-DD.")
    route: str
    requests: int
    errors: int = Field(description="Requests answered with a status of 400 or more.")
    prompt_tokens: int
    completion_tokens: int


class UsageResponse(BaseModel):
    """GET /v1/usage: a tenant's recorded usage and its limits' windows right now."""

    tenant: str
    since: str = Field(description="First UTC day included.")
    days: list[UsageDay]
    requests: int = Field(description="Total requests in `days`.")
    prompt_tokens: int
    completion_tokens: int
    limits: dict[str, dict[str, int | None]] = Field(
        description="Per subject (tenant:NAME, key:ID): its limits (null: none)."
    )
    current: dict[str, dict[str, int]] = Field(
        description="Per subject: requests and tokens in the last minute, tokens today, open "
        "streams (reservations included)."
    )
    request_id: str = ""


def to_usage_days(rows: list[DayUsage]) -> list[UsageDay]:
    """Domain usage rows as response items."""
    return [UsageDay(**asdict(row)) for row in rows]


def to_hit(hit: Hit) -> SearchHit:
    """A domain hit as a search result."""
    return SearchHit(content=hit.content, source=hit.source, score=hit.score, title=hit.title)


def to_ask_response(answer: Answer, request_id: str) -> AskResponse:
    """A domain answer as the /ask body (also the data of the SSE `done` event)."""
    usage = answer.usage
    hits = answer.sources
    validation = answer.validation
    return AskResponse(
        answer=answer.text,
        answer_mode=answer.mode,
        citations=[
            Citation(
                number=n,
                url=hits[n - 1].source,
                title=hits[n - 1].page_title,
                section=hits[n - 1].section,
                score=hits[n - 1].score,
            )
            for n in answer.citations
            if 1 <= n <= len(hits)
        ],
        sources=[
            Source(
                number=n,
                source=h.source,
                content=h.content,
                score=h.score,
                title=h.page_title,
                section=h.section,
            )
            for n, h in enumerate(hits, start=1)
        ],
        validation=None
        if validation is None
        else ValidationReport(**{**asdict(validation), "reasons": list(validation.reasons)}),
        prompt_version=answer.prompt_version,
        stop_reason=answer.stop_reason,
        tokens_used=TokenUsage(prompt=usage.prompt, completion=usage.completion, total=usage.total),
        latency_ms=answer.latency_ms,
        request_id=request_id,
        status=answer.status,
        message=answer.message,
        variant=answer.variant,
        answer_path=answer.path,
        engine=answer.engine,
        cache=answer.cache or None,
        tokens_saved=answer.tokens_saved,
    )


class VariantState(BaseModel):
    """One variant as routed now."""

    name: str
    version: str
    role: Literal["live", "canary", "shadow"]
    configured_weight: float
    share: float = Field(description="Share of live traffic now (0 once rolled back).")
    rolled_back: str | None = Field(description="Why it was rolled back, if it was.")
    window_requests: int = Field(description="Its requests in the canary window (this replica).")
    window_error_rate: float
    window_p95_ms: float


class VariantsResponse(BaseModel):
    """GET /admin/variants."""

    baseline: str
    variants: list[VariantState]
    breakers: dict[str, Literal["closed", "open", "half_open"]] = Field(
        description="Each engine's circuit breaker in this replica."
    )
