"""Generator: vLLM behind ray.serve.llm's LLMServer, reached through a DeploymentHandle."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

# Imported at module level: the first import takes ~10 s, which must not land on a request.
from ray.serve.llm.openai_api_models import ChatCompletionRequest

from deployments.faults import remote_call
from ragcore.protocols import DecodingParams, Generation, GenerationDelta, Readiness
from utils.settings import GeneratorSettings

if TYPE_CHECKING:
    from ray.serve.deployment import Application
    from ray.serve.handle import DeploymentHandle
    from ray.serve.llm import LLMConfig


def build_llm_config(settings: GeneratorSettings) -> LLMConfig:
    """ray.serve.llm config for the engine. On CPU the replica gets a CPU-only placement bundle;
    with `num_gpus` it asks for GPUs like any vLLM deployment."""
    from ray.serve.llm import LLMConfig

    env_vars = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    bundle: dict[str, float] = {"CPU": 1}
    if settings.num_gpus:
        bundle["GPU"] = settings.num_gpus
    else:
        env_vars["VLLM_CPU_KVCACHE_SPACE"] = "1"  # GiB: ~23k tokens of KV cache
    env_vars.update(settings.engine_env)
    return LLMConfig(
        model_loading_config={"model_id": settings.model_id, "model_source": settings.model_source},
        engine_kwargs=dict(settings.engine_kwargs),
        placement_group_config={"bundles": [bundle]},
        deployment_config=settings.deployment.serve_options(),
        runtime_env={"env_vars": env_vars},
        log_engine_metrics=True,
    )


def build_llm_app(settings: GeneratorSettings, name: str = "") -> Application:
    """The LLMServer deployment of an engine (`name` "" for the default one), ready to bind
    into the RAG app."""
    from ray.serve.llm import build_llm_deployment

    prefix = f"Generator-{name}:" if name else "Generator:"
    return build_llm_deployment(build_llm_config(settings), name_prefix=prefix)


def _parse_sse_chunks(item: Any) -> list[dict[str, Any]]:
    """LLMServer streams lists of `data: {json}` strings; return the JSON payloads."""
    items = item if isinstance(item, list) else [item]
    payloads: list[dict[str, Any]] = []
    for entry in items:
        if hasattr(entry, "model_dump"):
            payloads.append(entry.model_dump())
            continue
        for line in str(entry).splitlines():
            line = line.strip()
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                payloads.append(json.loads(line[5:]))
    return payloads


def finish_reason(choice: dict[str, Any]) -> str | None:
    """Why the engine stopped: OpenAI's finish_reason, or "repetition" when vLLM's repetition
    detection ended the answer (it reports that as a stop with a stop_reason)."""
    if choice.get("stop_reason") == "repetition_detected":
        return "repetition"
    return choice.get("finish_reason")


class GeneratorError(RuntimeError):
    """The engine answered with an error object instead of a completion."""


class ServeLLMGenerator:
    """The `Generator` protocol over an LLMServer DeploymentHandle."""

    def __init__(self, handle: DeploymentHandle, settings: GeneratorSettings) -> None:
        self.handle = handle
        self.settings = settings

    def _request(self, messages: list[dict[str, str]], params: DecodingParams, stream: bool) -> Any:
        loops = None
        if params.loop_ngram_tokens:
            loops = {"max_pattern_size": params.loop_ngram_tokens, "min_pattern_size": 1,
                     "min_count": params.loop_min_count}  # fmt: skip
        return ChatCompletionRequest(  # type: ignore[call-arg]
            model=self.settings.model_id,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            repetition_penalty=params.repetition_penalty,
            frequency_penalty=params.frequency_penalty,
            presence_penalty=params.presence_penalty,
            stop=list(params.stop) or None,
            repetition_detection=loops,  # type: ignore[arg-type]
            stream=stream,
            # Usage on every chunk: a stream cut at a loop still reports the tokens it took.
            stream_options={"include_usage": True, "continuous_usage_stats": True}  # type: ignore[arg-type]
            if stream
            else None,
        )

    async def generate(self, messages: list[dict[str, str]], params: DecodingParams) -> Generation:
        """One whole completion with the engine's usage. LLMServer.chat is a generator method,
        so even a non-streamed call goes through a streaming handle that yields one response."""
        response: Any = self.handle.options(stream=True).chat.remote(
            self._request(messages, params, stream=False)
        )
        try:
            async with remote_call("the generator"):
                item = await anext(response)
            data = item.model_dump() if hasattr(item, "model_dump") else item
            if not isinstance(data, dict) or "choices" not in data:
                raise GeneratorError(f"engine error: {str(data)[:300]}")
            usage = data.get("usage") or {}
            return Generation(
                text=data["choices"][0]["message"]["content"] or "",
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
            )
        except StopAsyncIteration:
            raise GeneratorError("engine returned no response") from None
        finally:
            response.cancel()  # a timeout or error must not leave vLLM generating

    async def stream(
        self, messages: list[dict[str, str]], params: DecodingParams
    ) -> AsyncIterator[GenerationDelta]:
        """Text deltas as they come; the last delta carries usage. Closing this generator
        cancels the handle call, which aborts the request inside vLLM (merely abandoning the
        stream would not: vLLM would generate up to max_tokens)."""
        response: Any = self.handle.options(stream=True).chat.remote(
            self._request(messages, params, stream=True)
        )
        try:
            async for item in _relayed(response, "the generator"):
                for payload in _parse_sse_chunks(item):
                    if "choices" not in payload:
                        raise GeneratorError(f"engine error: {str(payload)[:300]}")
                    choices = payload["choices"]
                    text = "".join((c.get("delta") or {}).get("content") or "" for c in choices)
                    reason = next((r for r in map(finish_reason, choices) if r), None)
                    usage = payload.get("usage")
                    if usage:
                        yield GenerationDelta(text, int(usage.get("prompt_tokens") or 0),
                                              int(usage.get("completion_tokens") or 0),
                                              reason)  # fmt: skip
                    elif text or reason:
                        yield GenerationDelta(text, finish_reason=reason)
        finally:
            response.cancel()

    async def openai_chat(self, payload: dict[str, Any]) -> AsyncIterator[str | dict[str, Any]]:
        """Pass an OpenAI chat-completions body straight to the engine: yields SSE strings when
        `stream` is set, else one response dict. Raises ValueError for an invalid body."""
        try:
            request = ChatCompletionRequest.model_validate(
                {**payload, "model": payload.get("model") or self.settings.model_id}
            )
        except Exception as exc:  # pydantic's error, reported to the client as a 422
            raise ValueError(str(exc).splitlines()[0]) from exc
        response: Any = self.handle.options(stream=True).chat.remote(request)
        try:
            async for item in _relayed(response, "the generator"):
                for entry in item if isinstance(item, list) else [item]:
                    yield entry.model_dump() if hasattr(entry, "model_dump") else str(entry)
        finally:
            response.cancel()

    async def readiness(self) -> Readiness:
        """Ready once the engine answers a health check."""
        async with remote_call("the generator"):
            await self.handle.check_health.remote()
        return Readiness(True)


async def _relayed(response: Any, what: str) -> AsyncIterator[Any]:
    """Items of a streaming handle call, with Ray's failures translated."""
    while True:
        async with remote_call(what):
            try:
                item = await anext(response)
            except StopAsyncIteration:
                return
        yield item
