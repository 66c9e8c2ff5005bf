"""Rate-limit headers from a limiter decision."""

from __future__ import annotations

import math

from ragcore.tenancy.limiter import Decision


def rate_headers(decision: Decision) -> dict[str, str]:
    """X-RateLimit-Limit/Remaining/Reset of the limit the decision reports (Reset: seconds
    until Remaining goes up again), X-RateLimit-Resource naming that limit, and Retry-After on
    a refusal. Nothing when no limit applies."""
    if not decision.resource:
        return {}
    headers = {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(max(0, decision.remaining)),
        "X-RateLimit-Reset": str(max(0, math.ceil(decision.reset_s - 1e-9))),
        "X-RateLimit-Resource": decision.resource,
    }
    if not decision.allowed:
        headers["Retry-After"] = decision.retry_after_header
    return headers
