"""HTTP request and response models, and the mapping from the service's domain objects."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from ragcore.protocols import Answer, Hit

MAX_QUERY_CHARS = 2000
MAX_K = 50


def _strip_query(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty or only whitespace")
    return value


class SearchParams(BaseModel):
    """Query parameters of GET /search (strings in the URL, converted)."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="What to look for.")
    k: int = Field(default=5, ge=1, le=MAX_K, description="How many chunks to return.")

    @field_validator("query")
    @classmethod
    def _strip(cls, value: str) -> str:
        return _strip_query(value)


class SearchRequest(SearchParams):
    """Body of POST /search: the same fields as JSON, where `k` must be a JSON integer (not
    `true` or `"5"`)."""

    k: StrictInt = Field(default=5, ge=1, le=MAX_K, description="How many chunks to return.")


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


class AskRequest(BaseModel):
    """Body of POST /ask and POST /ask/stream."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(
        min_length=1, max_length=MAX_QUERY_CHARS, description="The question to answer."
    )
    top_k: StrictInt = Field(default=5, ge=1, le=20, description="Chunks given to the model.")
    max_tokens: StrictInt | None = Field(
        default=None, ge=1, le=2048, description="Answer length cap; default from settings."
    )

    @field_validator("question")
    @classmethod
    def _strip(cls, value: str) -> str:
        return _strip_query(value)


class Source(BaseModel):
    """A retrieved chunk the answer may cite, numbered as in the prompt ([1], [2], ...)."""

    source: str
    content: str
    score: float


class TokenUsage(BaseModel):
    """Token counts reported by the engine."""

    prompt: int = 0
    completion: int = 0
    total: int = 0


class AskResponse(BaseModel):
    """A grounded answer with its sources; `status` is "degraded" when generation failed."""

    answer: str
    sources: list[Source]
    tokens_used: TokenUsage
    latency_ms: float
    request_id: str
    status: Literal["ok", "degraded"] = "ok"
    message: str = ""


class ErrorResponse(BaseModel):
    """Every non-2xx answer: what went wrong and what to do, never a traceback."""

    status: Literal["error"] = "error"
    message: str
    request_id: str = ""


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


def to_hit(hit: Hit) -> SearchHit:
    """A domain hit as a search result."""
    return SearchHit(content=hit.content, source=hit.source, score=hit.score, title=hit.title)


def to_ask_response(answer: Answer, request_id: str) -> AskResponse:
    """A domain answer as the /ask body (also the data of the SSE `done` event)."""
    usage = answer.usage
    return AskResponse(
        answer=answer.text,
        sources=[Source(source=h.source, content=h.content, score=h.score) for h in answer.sources],
        tokens_used=TokenUsage(prompt=usage.prompt, completion=usage.completion, total=usage.total),
        latency_ms=answer.latency_ms,
        request_id=request_id,
        status=answer.status,
        message=answer.message,
    )
