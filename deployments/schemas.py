"""HTTP request and response models of the ingress (kept apart from the logic)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_QUERY_CHARS = 2000
MAX_K = 50


def _strip_query(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty or only whitespace")
    return value


class SearchRequest(BaseModel):
    """Body of POST /search (GET /search takes the same fields as query parameters)."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="What to look for.")
    k: int = Field(default=5, ge=1, le=MAX_K, description="How many chunks to return.")

    @field_validator("query")
    @classmethod
    def _strip(cls, value: str) -> str:
        return _strip_query(value)


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
    top_k: int = Field(default=5, ge=1, le=20, description="Chunks given to the model.")
    max_tokens: int | None = Field(
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
