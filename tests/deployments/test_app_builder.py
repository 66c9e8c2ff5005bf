"""The app builder applies each deployment's options from settings (no Ray started)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from deployments.app import build_app


@pytest.fixture(autouse=True)
def no_ray_left_behind() -> Iterator[None]:
    """ray.serve.llm's builder starts a default local Ray; stop it unless it was running."""
    import ray

    was_running = ray.is_initialized()
    yield
    if ray.is_initialized() and not was_running:
        ray.shutdown()


def _deployments(app: Any) -> dict[str, Any]:
    """Every deployment bound into the application graph, by name."""
    found: dict[str, Any] = {}
    pending = [app._bound_deployment]
    while pending:
        node = pending.pop()
        found[node.name] = node
        for arg in [*node.init_args, *node.init_kwargs.values()]:
            inner = getattr(arg, "_bound_deployment", None)
            if inner is not None:
                pending.append(inner)
    return found


def test_ingress_and_generator_options_come_from_settings() -> None:
    app = build_app({"ingress": {"num_replicas": 2, "max_ongoing_requests": 77},
                     "generator": {"deployment": {"max_ongoing_requests": 9}}})  # fmt: skip
    deployments = _deployments(app)
    ingress = deployments["Ingress"]
    assert ingress.num_replicas == 2 and ingress.max_ongoing_requests == 77
    [generator] = [d for name, d in deployments.items() if name.startswith("Generator")]
    assert generator.max_ongoing_requests == 9
    assert "Embedder" not in deployments  # /search embeds in the Ingress replica (no hop)


def test_remote_embedder_adds_the_embedder_deployment() -> None:
    app = build_app({"remote_embedder": True, "generator": {"enabled": False},
                     "embedder": {"num_replicas": 3}})  # fmt: skip
    deployments = _deployments(app)
    assert set(deployments) == {"Ingress", "Embedder"}
    assert deployments["Embedder"].num_replicas == 3
