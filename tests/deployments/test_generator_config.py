"""The engine's ray.serve.llm config follows GeneratorSettings (no engine is started)."""

from __future__ import annotations

from deployments.generator import build_llm_config
from utils.settings import GeneratorSettings


def test_cpu_engine_gets_a_cpu_bundle_and_its_environment() -> None:
    settings = GeneratorSettings(engine_env={"VLLM_CPU_OMP_THREADS_BIND": "0-1"})
    config = build_llm_config(settings)
    env = config.runtime_env["env_vars"]
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "0-1"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert config.placement_group_config == {"bundles": [{"CPU": 1}]}


def test_gpu_engine_asks_for_gpus_and_skips_cpu_settings() -> None:
    config = build_llm_config(GeneratorSettings(num_gpus=1))
    assert config.placement_group_config == {"bundles": [{"CPU": 1, "GPU": 1}]}
    assert "VLLM_CPU_KVCACHE_SPACE" not in config.runtime_env["env_vars"]
