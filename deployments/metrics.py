"""Application metrics on Ray's Prometheus endpoint (names are the dashboard's contract)."""

from __future__ import annotations

from typing import Any

from ragcore.metrics import BATCH_BOUNDARIES, LATENCY_BOUNDARIES_MS


class ServeMetrics:
    """ray.serve.metrics instruments; create inside a replica (they bind to its process)."""

    def __init__(self) -> None:
        from ray.serve import metrics

        self._stage = metrics.Histogram(
            "rag_stage_latency_ms", description="Latency of each stage: embed, retrieve, "
            "generate and end_to_end.", boundaries=LATENCY_BOUNDARIES_MS,
            tag_keys=("stage", "route"),  # type: ignore[arg-type]
        )  # fmt: skip
        version: Any = ("prompt_version", "variant")
        self._ttft = metrics.Histogram(
            "rag_time_to_first_token_ms", description="Time from request to first streamed token.",
            boundaries=LATENCY_BOUNDARIES_MS, tag_keys=version,
        )  # fmt: skip
        self._tpot = metrics.Histogram(
            "rag_time_per_output_token_ms", description="Generation time per output token.",
            boundaries=[1.0, 2, 5, 10, 20, 50, 100, 200, 500, 1000], tag_keys=version,
        )  # fmt: skip
        self._prompt_tokens = metrics.Counter(
            "rag_prompt_tokens", description="Prompt tokens reported by the engine.",
            tag_keys=version,
        )  # fmt: skip
        self._completion_tokens = metrics.Counter(
            "rag_completion_tokens", description="Completion tokens reported by the engine.",
            tag_keys=version,
        )  # fmt: skip
        self._answers = metrics.Counter(
            "rag_answers", description="Answers by mode (generated, extractive, refused), "
            "prompt version and the first failed check or fallback reason.",
            tag_keys=("mode", "prompt_version", "reason", "variant"),  # type: ignore[arg-type]
        )  # fmt: skip
        self._groundedness = metrics.Histogram(
            "rag_answer_groundedness", description="Share of a generated answer's sentences "
            "that a retrieved chunk supports.", boundaries=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7,
                                                            0.8, 0.9, 0.95, 1.0],
            tag_keys=version,
        )  # fmt: skip
        self._requests = metrics.Counter(
            "rag_requests", description="HTTP requests by route and status code.",
            tag_keys=("route", "status"),  # type: ignore[arg-type]
        )  # fmt: skip
        self._empty = metrics.Counter(
            "rag_empty_retrievals", description="Queries that retrieved nothing.",
            tag_keys=("route",),
        )  # fmt: skip
        self._batch = metrics.Histogram(
            "rag_batch_size", description="Queries per micro-batch in a replica, by stage.",
            boundaries=BATCH_BOUNDARIES, tag_keys=("stage",),
        )  # fmt: skip
        self._degraded = metrics.Counter(
            "rag_degraded_answers", description="Answers served without generation.",
            tag_keys=("reason", "prompt_version", "variant"),  # type: ignore[arg-type]
        )  # fmt: skip

        self._tenant_requests = metrics.Counter(
            "rag_tenant_requests", description="Requests by tenant (the first "
            "auth.metrics_max_tenants per replica; then 'other'), route and status.",
            tag_keys=("tenant", "route", "status"),  # type: ignore[arg-type]
        )  # fmt: skip
        self._tenant_tokens = metrics.Counter(
            "rag_tenant_tokens", description="Prompt and completion tokens by tenant.",
            tag_keys=("tenant", "kind"),  # type: ignore[arg-type]
        )  # fmt: skip
        self._limited = metrics.Counter(
            "rag_rate_limited", description="Requests a limit refused, by tenant and limit.",
            tag_keys=("tenant", "limit"),  # type: ignore[arg-type]
        )  # fmt: skip
        self._auth_failures = metrics.Counter(
            "rag_auth_failures", description="401s and 403s by reason: missing, invalid, "
            "scope, collection.", tag_keys=("reason",),
        )  # fmt: skip
        self._store_errors = metrics.Counter(
            "rag_tenant_store_errors", description="Tenant store calls that failed or timed "
            "out, by operation.", tag_keys=("op",),
        )  # fmt: skip
        self._store_bypassed = metrics.Counter(
            "rag_tenant_store_bypassed", description="Requests let through unlimited because "
            "the store was down and auth.on_store_failure is open.", tag_keys=("op",),
        )  # fmt: skip

        self._guards = metrics.Counter(
            "rag_guard_events", description="Guard detections by guard (injection, pii, "
            "pii_output, leak, markup), reason, action taken and tenant.",
            tag_keys=("guard", "reason", "action", "tenant"),  # type: ignore[arg-type]
        )  # fmt: skip
        self._redactions = metrics.Counter(
            "rag_guard_redactions", description="PII entities redacted from questions, by "
            "entity and tenant.", tag_keys=("entity", "tenant"),  # type: ignore[arg-type]
        )  # fmt: skip

        self._cache = metrics.Counter(
            "rag_cache_lookups", description="Answer cache lookups by tier (exact, semantic, "
            "put) and outcome (hit, miss, near_miss: a close question the near-miss guard "
            "refused, error).", tag_keys=("tier", "outcome"),  # type: ignore[arg-type]
        )  # fmt: skip
        self._breaker = metrics.Gauge(
            "rag_breaker_state", description="Circuit breaker of each engine: 0 closed, "
            "1 half-open, 2 open.", tag_keys=("engine",),
        )  # fmt: skip
        self._fallbacks = metrics.Counter(
            "rag_engine_fallbacks", description="Engines skipped (circuit_open) or failed "
            "before answering, so the next path answered.", tag_keys=("engine", "reason"),  # type: ignore[arg-type]
        )  # fmt: skip
        self._reranks = metrics.Counter(
            "rag_reranks", description="Search batches by rerank outcome: reranked by the "
            "index version's own reranker, or served in fused order (timeout, error).",
            tag_keys=("outcome",),
        )  # fmt: skip
        self._rollbacks = metrics.Counter(
            "rag_canary_rollbacks", description="Canaries rolled back, by variant and reason "
            "(error_rate, p95_latency, validation_failures).", tag_keys=("variant", "reason"),  # type: ignore[arg-type]
        )  # fmt: skip
        self._share = metrics.Gauge(
            "rag_variant_share", description="Each variant's share of live traffic now.",
            tag_keys=("variant",),
        )  # fmt: skip
        self._variant_requests = metrics.Counter(
            "rag_variant_requests", description="Requests by variant, route, status and the "
            "path that answered (generator, fallback_generator, fallback_extractive, cache, "
            "none).", tag_keys=("variant", "route", "status", "path"),  # type: ignore[arg-type]
        )  # fmt: skip
        self._feedback_and_shadow(metrics)

    def _feedback_and_shadow(self, metrics: Any) -> None:
        self._feedback = metrics.Counter(
            "rag_feedback", description="User ratings (up, down) by variant.",
            tag_keys=("variant", "rating"),
        )  # fmt: skip
        self._review_queued = metrics.Counter(
            "rag_review_queued", description="Answers queued for human review, by reason "
            "(validation_failed, refused, thumbs_down).", tag_keys=("reason",),
        )  # fmt: skip
        self._review_pending = metrics.Gauge(
            "rag_review_pending", description="Answers awaiting review (at the last write).",
        )  # fmt: skip
        self._shadow = metrics.Counter(
            "rag_shadow_requests", description="Shadow copies by variant and outcome "
            "(compared, failed, preempted: live traffic came back, dropped: queue full, "
            "expired: waited over shadow_max_wait_s).",
            tag_keys=("variant", "outcome"),
        )  # fmt: skip
        unit = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]
        self._shadow_overlap = metrics.Histogram(
            "rag_shadow_retrieval_overlap", description="Share of the live top-k sources the "
            "shadow also retrieved.", boundaries=unit, tag_keys=("variant",),
        )  # fmt: skip
        self._shadow_similarity = metrics.Histogram(
            "rag_shadow_answer_similarity", description="Cosine of the live and shadow answers' "
            "embeddings.", boundaries=unit, tag_keys=("variant",),
        )  # fmt: skip
        self._shadow_latency = metrics.Histogram(
            "rag_shadow_latency_ms", description="Latency of a shadowed request, live and "
            "shadow side.", boundaries=LATENCY_BOUNDARIES_MS, tag_keys=("variant", "side"),
        )  # fmt: skip

    def stage(self, stage: str, route: str, ms: float) -> None:
        self._stage.observe(ms, tags={"stage": stage, "route": route})

    def request(self, route: str, status: int) -> None:
        self._requests.inc(1, tags={"route": route, "status": str(status)})

    def tokens(self, prompt: int, completion: int, prompt_version: str, variant: str = "") -> None:
        tags = {"prompt_version": prompt_version, "variant": variant}
        if prompt:
            self._prompt_tokens.inc(prompt, tags=tags)
        if completion:
            self._completion_tokens.inc(completion, tags=tags)

    def first_token(self, ms: float, prompt_version: str, variant: str = "") -> None:
        self._ttft.observe(ms, tags={"prompt_version": prompt_version, "variant": variant})

    def per_output_token(self, ms: float, prompt_version: str, variant: str = "") -> None:
        self._tpot.observe(ms, tags={"prompt_version": prompt_version, "variant": variant})

    def empty_retrieval(self, route: str) -> None:
        self._empty.inc(1, tags={"route": route})

    def degraded(self, reason: str, prompt_version: str, variant: str = "") -> None:
        self._degraded.inc(1, tags={"reason": reason, "prompt_version": prompt_version,
                                    "variant": variant})  # fmt: skip

    def answer(self, mode: str, prompt_version: str, reason: str, variant: str = "") -> None:
        self._answers.inc(1, tags={"mode": mode, "prompt_version": prompt_version,
                                   "reason": reason or "none", "variant": variant})  # fmt: skip

    def groundedness(self, value: float, prompt_version: str, variant: str = "") -> None:
        self._groundedness.observe(value, tags={"prompt_version": prompt_version,
                                                "variant": variant})  # fmt: skip

    def batch(self, stage: str, size: int) -> None:
        self._batch.observe(size, tags={"stage": stage})

    def tenant_request(self, tenant: str, route: str, status: int) -> None:
        self._tenant_requests.inc(1, tags={"tenant": tenant, "route": route,
                                           "status": str(status)})  # fmt: skip

    def tenant_tokens(self, tenant: str, prompt: int, completion: int) -> None:
        for kind, count in (("prompt", prompt), ("completion", completion)):
            if count:
                self._tenant_tokens.inc(count, tags={"tenant": tenant, "kind": kind})

    def limited(self, tenant: str, reason: str) -> None:
        self._limited.inc(1, tags={"tenant": tenant, "limit": reason})

    def auth_failure(self, reason: str) -> None:
        self._auth_failures.inc(1, tags={"reason": reason})

    def store_error(self, op: str) -> None:
        self._store_errors.inc(1, tags={"op": op})

    def store_bypassed(self, op: str) -> None:
        self._store_bypassed.inc(1, tags={"op": op})

    def guard(self, guard: str, reason: str, action: str, tenant: str) -> None:
        self._guards.inc(1, tags={"guard": guard, "reason": reason, "action": action,
                                  "tenant": tenant})  # fmt: skip

    def redaction(self, entity: str, tenant: str) -> None:
        self._redactions.inc(1, tags={"entity": entity, "tenant": tenant})

    def cache(self, tier: str, outcome: str) -> None:
        self._cache.inc(1, tags={"tier": tier, "outcome": outcome})

    def breaker_state(self, engine: str, state: int) -> None:
        self._breaker.set(state, tags={"engine": engine})

    def fallback(self, engine: str, reason: str) -> None:
        self._fallbacks.inc(1, tags={"engine": engine, "reason": reason})

    def rerank(self, outcome: str) -> None:
        self._reranks.inc(1, tags={"outcome": outcome})

    def canary_rollback(self, variant: str, reason: str) -> None:
        self._rollbacks.inc(1, tags={"variant": variant, "reason": reason})

    def variant_share(self, variant: str, share: float) -> None:
        self._share.set(share, tags={"variant": variant})

    def variant_request(self, variant: str, route: str, status: int, path: str) -> None:
        self._variant_requests.inc(1, tags={"variant": variant, "route": route,
                                            "status": str(status), "path": path})  # fmt: skip

    def feedback(self, variant: str, rating: str) -> None:
        self._feedback.inc(1, tags={"variant": variant, "rating": rating})

    def review_queued(self, reason: str) -> None:
        self._review_queued.inc(1, tags={"reason": reason})

    def review_pending(self, count: int) -> None:
        self._review_pending.set(count)

    def shadow(self, variant: str, outcome: str) -> None:
        self._shadow.inc(1, tags={"variant": variant, "outcome": outcome})

    def shadow_comparison(
        self, variant: str, overlap: float, similarity: float | None, live_ms: float,
        shadow_ms: float,
    ) -> None:  # fmt: skip
        tags = {"variant": variant}
        self._shadow_overlap.observe(overlap, tags=tags)
        if similarity is not None:
            self._shadow_similarity.observe(similarity, tags=tags)
        self._shadow_latency.observe(live_ms, tags=tags | {"side": "live"})
        self._shadow_latency.observe(shadow_ms, tags=tags | {"side": "shadow"})
