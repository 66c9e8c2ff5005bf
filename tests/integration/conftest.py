"""Integration fixtures: a real local Ray and the Ray docs mirror when it is present."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import shared_path
from utils.static_site import unpack_ray_docs


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def ray_session() -> Iterator[int]:
    """One real local Ray for the in-process integration tests; yields its metrics port."""
    import ray

    from utils.ray_runtime import init_ray

    metrics_port = free_port()
    init_ray(None, num_cpus=8, metrics_export_port=metrics_port)
    yield metrics_port
    ray.shutdown()


@pytest.fixture(scope="session")
def ray_docs_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs.ray.io mirror unpacked into one site root (skips when the data is absent)."""
    archive = shared_path("ray-docs", "ray-docs-html.tar.gz")
    return unpack_ray_docs(archive, tmp_path_factory.mktemp("ray-docs"))
