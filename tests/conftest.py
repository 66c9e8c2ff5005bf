"""Shared fixtures: paths to ../shared/data, and the environment every test runs in."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.helpers import RedisServer

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("RAG_SHARED_DATA", ROOT.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or a clean skip when that data is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data {path} is absent")
    return path


@pytest.fixture(scope="session")
def ray_session() -> Iterator[int]:
    """One real local Ray for the in-process integration tests; yields its metrics port."""
    import ray

    from tests.helpers import free_port
    from utils.ray_runtime import init_ray

    if ray.is_initialized():  # started implicitly by something else, with other resources
        ray.shutdown()
    metrics_port = free_port()
    init_ray(None, num_cpus=8, metrics_export_port=metrics_port)
    yield metrics_port
    ray.shutdown()


@pytest.fixture(scope="session")
def ray_docs_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs.ray.io mirror unpacked into one site root (skips when the data is absent)."""
    from utils.static_site import unpack_ray_docs

    archive = shared_path("ray-docs", "ray-docs-html.tar.gz")
    return unpack_ray_docs(archive, tmp_path_factory.mktemp("ray-docs"))


@pytest.fixture
def redis_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server for one test, stopped after it; a clean skip when redis-server is
    not installed (`make setup` installs it). Options (`appendonly`) come by indirect
    parametrization."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (make setup installs it)")
    from tests.helpers import RedisServer

    server = RedisServer(tmp_path / "redis", **getattr(request, "param", {})).start()
    yield server
    server.stop()
