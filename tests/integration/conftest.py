"""Integration fixtures: a real local Ray and the Ray docs mirror when it is present."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import shared_path
from utils.static_site import unpack_ray_docs


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One real local Ray for the in-process integration tests."""
    import ray

    from utils.ray_runtime import init_ray

    init_ray(None, num_cpus=8)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def ray_docs_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs.ray.io mirror unpacked into one site root (skips when the data is absent)."""
    archive = shared_path("ray-docs", "ray-docs-html.tar.gz")
    return unpack_ray_docs(archive, tmp_path_factory.mktemp("ray-docs"))
