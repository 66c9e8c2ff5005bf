"""One settings model: env and args merge for the service; deployment options validated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from utils.settings import DeploymentOptions, Settings, service_settings


def test_service_settings_layer_args_over_rag_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_SERVICE__RETRIEVAL__TOP_K", "7")
    monkeypatch.setenv("RAG_SERVICE__RETRIEVAL__RRF_K", "30")
    settings = service_settings({"retrieval": {"rrf_k": 20}})
    assert settings.retrieval.top_k == 7 and settings.retrieval.rrf_k == 20
    # the harness reads the very same environment
    assert Settings().service.retrieval.top_k == 7


def test_deployment_options_are_serve_keyword_arguments() -> None:
    options = DeploymentOptions(num_replicas=2, ray_actor_options={"num_cpus": 1})
    assert options.serve_options() == {"num_replicas": 2, "ray_actor_options": {"num_cpus": 1}}
    with pytest.raises(ValidationError, match="not both"):
        DeploymentOptions(num_replicas=2, autoscaling_config={"min_replicas": 1})
    with pytest.raises(ValidationError):
        DeploymentOptions(max_ongoing_request=3)  # type: ignore[call-arg]


def test_guard_actions_layer_route_then_tenant() -> None:
    from utils.guard_settings import GuardSettings

    settings = GuardSettings(routes={"/ask": {"injection": "flag"}},
                             tenants={"lab": {"injection": "off", "pii": "flag"}})  # fmt: skip
    assert settings.actions_for("/ask/stream", "acme").injection == "block"
    assert settings.actions_for("/ask", "acme").injection == "flag"
    lab = settings.actions_for("/ask", "lab")
    assert (lab.injection, lab.pii, lab.leak) == ("off", "flag", "block")
    assert GuardSettings(enabled=False).actions_for("/ask", None).leak == "off"
