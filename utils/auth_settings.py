"""Settings of tenants: API keys, limits, the shared store and its failure policy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from utils.paths import PROJECT_ROOT, project_path

# Tenant and collection names: safe in paths, metric labels and Redis keys.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class LimitSettings(BaseModel):
    """Limits of a tenant that has none of its own (None: no limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rpm: int | None = Field(default=600, ge=1, description="Requests per minute.")
    tokens_per_minute: int | None = Field(
        default=60_000, ge=1, description="Prompt plus completion tokens per minute."
    )
    tokens_per_day: int | None = Field(
        default=2_000_000, ge=1, description="Prompt plus completion tokens per UTC day."
    )
    max_streams: int | None = Field(default=8, ge=1, description="Concurrent streams.")


class AuthSettings(BaseModel):
    """API keys and limits. Keys are made with `python manage_keys.py create --tenant NAME`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=True, description="Require an API key on every route but /healthz and /readyz."
    )
    store: Literal["embedded", "redis"] = Field(
        default="embedded",
        description="embedded: SQLite under state_dir behind one named Ray actor (no extra "
        "service); redis: keys, counters and usage in Redis at redis_url.",
    )
    state_dir: Path = Field(
        default=PROJECT_ROOT / "state", description="Where the embedded store keeps tenants.db."
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis for store: redis (may hold a password: set it through "
        "RAG_SERVICE__AUTH__REDIS_URL, not in a committed file).",
        repr=False,
    )
    on_store_failure: Literal["closed", "open"] = Field(
        default="closed",
        description="When the store cannot be reached: closed answers 503; open lets requests "
        "through unlimited (keys still checked from the cache), with a warning and a metric.",
    )
    store_timeout_s: float = Field(default=1.0, gt=0, le=30, description="Per store call.")
    key_cache_s: float = Field(
        default=2.0,
        ge=0,
        le=300,
        description="How long a replica trusts a key lookup: a revoked key is refused within "
        "this time.",
    )
    default_limits: LimitSettings = Field(
        default_factory=LimitSettings, description="Limits of tenants without their own."
    )
    stream_lease_s: float = Field(
        default=600, gt=0, le=86400,
        description="A stream's concurrency lease expires after this even if never released "
        "(a crashed replica cannot hold one forever).",
    )  # fmt: skip
    usage_flush_s: float = Field(
        default=0.5, gt=0, le=60, description="How often a replica writes its usage records."
    )
    metrics_max_tenants: int = Field(
        default=50, ge=0, le=10_000,
        description="Tenants named in metric labels per replica; later ones count as 'other'.",
    )  # fmt: skip

    @field_validator("state_dir")
    @classmethod
    def _project_relative(cls, value: Path) -> Path:
        return project_path(value)


class CollectionSettings(BaseModel):
    """One more named collection: an index root with its own CURRENT."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index_dir: Path = Field(description="Published index root of this collection.")
    index_version: str | None = Field(default=None, description="Pin; None follows CURRENT.")

    @field_validator("index_dir")
    @classmethod
    def _project_relative(cls, value: Path) -> Path:
        return project_path(value)
