"""Settings of variants (A/B, canary, shadow), the answer cache and the generator's circuit
breaker. One model: serve_config.yaml `args`, `user_config` and evaluate.py read the same."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from utils.auth_settings import NAME_RE

# Fusion fields a variant may change per request; BM25's k1 and b are baked into the index a
# replica loaded, so a variant cannot change them.
VARIANT_RETRIEVAL_FIELDS = ("top_k", "mode", "candidates", "rrf_k", "dense_weight",
                            "lexical_weight", "max_per_page", "dedupe", "page_bonus")  # fmt: skip
DEFAULT_ENGINE = "default"


class VariantDecoding(BaseModel):
    """A variant's decoding; None keeps the prompt version's and the server's values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int | None = Field(default=None, ge=1, le=4096)
    temperature: float | None = Field(default=None, ge=0, le=2)
    repetition_penalty: float | None = Field(default=None, ge=1.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=0.0, le=2.0)
    presence_penalty: float | None = Field(default=None, ge=0.0, le=2.0)


class FaultSettings(BaseModel):
    """Faults a variant injects into its own generations: for canary drills and the canary
    benchmark, never for real traffic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    error_rate: float = Field(default=0.0, ge=0, le=1, description="Share of generations failed.")
    added_latency_ms: float = Field(default=0.0, ge=0, le=60_000, description="Delay per answer.")


class VariantSettings(BaseModel):
    """A named, versioned bundle of what shapes an answer: index versions, engine and
    decoding, prompt version, retrieval settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_RE.pattern, description="Shown in responses and metrics.")
    version: str = Field(default="1", pattern=NAME_RE.pattern, description="Bump on change.")
    weight: float = Field(default=1.0, ge=0, le=1000, description="Share of live traffic.")
    role: Literal["live", "canary", "shadow"] = Field(
        default="live",
        description="live: served by weight; canary: served by weight and rolled back to 0 when "
        "it does worse than the baseline; shadow: never served, gets a copy of `shadow_sample` "
        "of the traffic.",
    )
    engine: str = Field(
        default=DEFAULT_ENGINE, description="`default` (the generator) or a name in `engines`."
    )
    prompt_version: str | None = Field(default=None, description="None: answers.prompt_version.")
    decoding: VariantDecoding = Field(default_factory=VariantDecoding)
    index_versions: dict[str, str] = Field(
        default_factory=dict, description="Pins per collection name; others follow CURRENT."
    )
    retrieval: dict[str, Any] = Field(
        default_factory=dict, description=f"Overrides of: {', '.join(VARIANT_RETRIEVAL_FIELDS)}."
    )
    shadow_sample: float = Field(
        default=0.1, ge=0, le=1, description="Share of live requests copied to a shadow variant."
    )
    fault: FaultSettings | None = Field(default=None, description="Fault injection (drills).")

    @model_validator(mode="after")
    def _retrieval_fields(self) -> VariantSettings:
        unknown = sorted(set(self.retrieval) - set(VARIANT_RETRIEVAL_FIELDS))
        if unknown:
            allowed = ", ".join(VARIANT_RETRIEVAL_FIELDS)
            raise ValueError(f"variant {self.name}: retrieval may set only {allowed}; "
                             f"not {', '.join(unknown)}")  # fmt: skip
        return self

    @property
    def label(self) -> str:
        """`name@version`: how responses, logs and the cache name this variant."""
        return f"{self.name}@{self.version}"


class CanarySettings(BaseModel):
    """When a canary is rolled back: over the last `window_s`, with at least `min_requests` of
    its own, it does worse than the baseline by more than a margin."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_s: float = Field(default=60.0, gt=0, le=86400)
    min_requests: int = Field(default=20, ge=1, le=100_000)
    error_rate_margin: float = Field(default=0.05, ge=0, le=1, description="Absolute.")
    p95_latency_margin_ms: float = Field(default=2000.0, ge=0, description="Absolute, in ms.")
    validation_failure_margin: float = Field(default=0.15, ge=0, le=1, description="Absolute.")


class BreakerSettings(BaseModel):
    """The circuit breaker in front of each generator engine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    failures: int = Field(default=5, ge=1, le=10_000, description="Failures that open it...")
    window_s: float = Field(default=30.0, gt=0, le=3600, description="...within this window.")
    open_s: float = Field(default=15.0, gt=0, le=3600, description="Open this long, then probe.")
    half_open_probes: int = Field(default=1, ge=1, le=100, description="Probes let through.")


class CacheSettings(BaseModel):
    """The answer cache: an exact tier and a semantic tier, in the shared store of the rate
    limits (auth.store: the embedded actor or Redis)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Cache /ask answers.")
    semantic: bool = Field(default=True, description="Also answer close paraphrases.")
    ttl_s: float = Field(default=3600.0, gt=0, le=30 * 86400, description="Entry lifetime.")
    max_entries: int = Field(default=20_000, ge=1, le=10_000_000, description="Exact tier bound.")
    max_semantic_per_scope: int = Field(
        default=512, ge=1, le=100_000,
        description="Newest questions per scope (tenant, collection, index, variant) the "
        "semantic tier compares with.",
    )  # fmt: skip
    similarity_threshold: float = Field(
        default=0.92, gt=0, le=1,
        description="Cosine a paraphrase must reach (chosen on the dev pairs, benchmarks.md).",
    )  # fmt: skip
    min_content_overlap: float = Field(
        default=1.0, ge=0, le=1,
        description="Share of content words two questions must share for a semantic hit "
        "(Jaccard; the near-miss guard's last check). 1.0, chosen on the dev pairs: any "
        "content word one question has and the other lacks refuses the hit.",
    )  # fmt: skip
    cache_modes: tuple[str, ...] = Field(
        default=("generated", "extractive"),
        description="Answer modes stored; refusals and degraded answers are never stored.",
    )
    store_timeout_s: float = Field(default=0.5, gt=0, le=30, description="Per cache call.")


class VariantsSettings(BaseModel):
    """The variants the service routes between, and the policies around them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    items: list[VariantSettings] = Field(
        default_factory=lambda: [VariantSettings(name="main")],
        description="Variants; live and canary ones share traffic by weight.",
    )
    baseline: str | None = Field(
        default=None, description="The variant a canary is compared with; None: the first live."
    )
    force_scopes: tuple[str, ...] = Field(
        default=("admin", "test"),
        description="Key scopes that may pick a variant with the X-Variant header.",
    )
    canary: CanarySettings = Field(default_factory=CanarySettings)
    shadow_log: str = Field(
        default="shadow.jsonl", description="Comparison log, under auth.state_dir."
    )
    shadow_max_in_flight: int = Field(
        default=4, ge=1, le=1000, description="Shadow runs at once per replica."
    )
    shadow_max_live_in_flight: int = Field(
        default=0, ge=0, le=1000,
        description="Shadow copies start, and keep running, only while the whole app (every "
        "Ingress replica) has at most this many live requests in flight; a busier app cancels "
        "running copies. 0: copies use idle capacity only (no live request for "
        "`shadow_idle_s`), so they never run beside a user's request; more trades live "
        "latency for coverage.",
    )  # fmt: skip
    shadow_idle_s: float = Field(
        default=0.5, ge=0, le=60,
        description="With shadow_max_live_in_flight 0: how long the app must have had no live "
        "request before a copy starts (longer than the gap between a user's requests).",
    )  # fmt: skip
    shadow_max_queued: int = Field(
        default=32, ge=1, le=10_000,
        description="Copies waiting for idle capacity per replica; beyond it the oldest is "
        "dropped (counted).",
    )  # fmt: skip
    shadow_max_wait_s: float = Field(
        default=300, gt=0, le=86_400, description="A copy waiting longer is dropped (counted)."
    )
    shadow_poll_s: float = Field(
        default=0.1, gt=0, le=5,
        description="How often replicas publish and read the app's live traffic (shared "
        "store) while shadows are configured.",
    )  # fmt: skip

    @property
    def has_shadows(self) -> bool:
        """Whether any variant is a shadow (else nothing is queued or published)."""
        return any(v.role == "shadow" for v in self.items)

    @model_validator(mode="after")
    def _consistent(self) -> VariantsSettings:
        names = [v.name for v in self.items]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique: {names}")
        served = [v for v in self.items if v.role != "shadow"]
        if not served or sum(v.weight for v in served) <= 0:
            raise ValueError("at least one live or canary variant needs a weight above 0")
        if self.baseline is not None and self.baseline not in names:
            raise ValueError(f"baseline {self.baseline!r} is not a variant: {names}")
        return self

    def by_name(self) -> dict[str, VariantSettings]:
        """Every variant by name."""
        return {v.name: v for v in self.items}

    def baseline_name(self) -> str:
        """The canary's reference: `baseline`, else the first live variant."""
        live = [v.name for v in self.items if v.role == "live"]
        return self.baseline or (live[0] if live else self.items[0].name)
