"""Settings of the guards: what each guard does, per route and per tenant."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

InjectionAction = Literal["block", "flag", "off"]
RedactAction = Literal["redact", "block", "flag", "off"]


class GuardActions(BaseModel):
    """What each guard does when it fires: block (refuse with a reason code), redact (replace
    what it found), flag (count and log only) or off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    injection: InjectionAction = Field(
        default="block", description="Prompt injection or jailbreak in the question."
    )
    pii: RedactAction = Field(
        default="redact", description="PII in the question (before the model and the logs) "
        "and in the answer.",
    )  # fmt: skip
    leak: InjectionAction = Field(
        default="block", description="The canary or the system prompt in an answer."
    )
    markup: RedactAction = Field(
        default="redact", description="Markup a browser would execute, in an answer."
    )


class GuardOverrides(BaseModel):
    """Actions that differ from the defaults, for one route or one tenant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    injection: InjectionAction | None = None
    pii: RedactAction | None = None
    leak: InjectionAction | None = None
    markup: RedactAction | None = None


class GuardSettings(BaseModel):
    """The guard pipeline on /ask, /ask/stream and the OpenAI route (an LLM reads those)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="False turns every guard off.")
    actions: GuardActions = Field(default_factory=GuardActions, description="The defaults.")
    routes: dict[str, GuardOverrides] = Field(
        default_factory=dict, description='Per route, e.g. {"/v1/chat/completions": {...}}.'
    )
    tenants: dict[str, GuardOverrides] = Field(
        default_factory=dict, description="Per tenant; laid over the route's."
    )
    metrics_max_tenants: int = Field(
        default=50, ge=0, le=10_000, description="Tenants named in guard metric labels."
    )
    canary_secret: str | None = Field(
        default=None,
        repr=False,
        description="Derives the canary token the system prompt carries; None draws a random "
        "one per process (set it to keep one canary across replicas).",
    )

    def actions_for(self, route: str, tenant: str | None) -> GuardActions:
        """The defaults, then the route's overrides, then the tenant's."""
        if not self.enabled:
            return GuardActions(injection="off", pii="off", leak="off", markup="off")
        merged = self.actions.model_dump()
        for layer in (self.routes.get(route), self.tenants.get(tenant or "")):
            if layer is not None:
                merged.update(layer.model_dump(exclude_none=True))
        return GuardActions.model_validate(merged)


class ChunkScanSettings(BaseModel):
    """The build's scan of every chunk for indirect injection (ragcore/guards/chunk_scan.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["quarantine", "drop", "off"] = Field(
        default="quarantine",
        description="quarantine: keep flagged chunks in the version's quarantine.jsonl, never "
        "served; drop: leave them out; off: no scan. The manifest counts them either way.",
    )
    classifier_threshold: float = Field(
        default=0.99, gt=0.0, le=1.0,
        description="The head's score on a chunk's vector that flags it (documents need a "
        "stricter bar than questions; bench/guard_quality.py measures it on the Ray docs).",
    )  # fmt: skip
