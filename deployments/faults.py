"""Ray's failures of a remote call, as the service's own errors (503 or 429, never a 500)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from utils.errors import OverloadedError, UnavailableError


@asynccontextmanager
async def remote_call(what: str) -> AsyncIterator[None]:
    """Translate a replica's death or back-pressure inside the block."""
    try:
        yield
    except BackPressureError as exc:
        raise OverloadedError(f"{what} is at capacity") from exc
    except (RayActorError, DeploymentUnavailableError) as exc:  # actor died or unreachable
        raise UnavailableError(f"{what} replica is restarting") from exc
