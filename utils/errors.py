"""Errors that carry a message meant for the user, not a traceback."""

from pydantic import ValidationError


class InputError(Exception):
    """Bad input from the user: the message says what to fix. CLIs print it as one line."""


class ModelMismatchError(InputError):
    """An index was opened with another embedding model than the one it was built with."""


class IndexNotReadyError(Exception):
    """No published index can be loaded yet; the message says why."""


class OverloadedError(Exception):
    """A part is at capacity right now; the caller should retry after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UnavailableError(Exception):
    """A part the request needs is down (a replica died, a call failed); retry later."""


class RequestRejectedError(Exception):
    """A well-formed request asks for something this server does not allow (an unknown prompt
    version, a decoding value past the server's limit): a 422 whose message says what to use."""


class AuthenticationError(Exception):
    """No API key, or one that is unknown, revoked or expired: a 401 that never says which."""


class ForbiddenError(Exception):
    """A valid key without the scope for a route or collection: a 403 saying what is missing."""


class RateLimitedError(Exception):
    """A limit refused the request: a 429 with exact Retry-After and X-RateLimit-* headers."""

    def __init__(self, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.headers = headers


class StoreUnavailableError(Exception):
    """The tenant store (keys, limits) cannot be reached and the policy is to fail closed."""


class GuardRefusalError(Exception):
    """A guard refused the request: a 400 whose `reason` is a stable code
    (prompt_injection:<family>, pii:<entities>)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def validation_line(exc: ValidationError) -> str:
    """The first error of a settings validation as "dotted.location: message", for a CLI's
    one error line."""
    err = exc.errors()[0]
    return f"{'.'.join(map(str, err['loc']))}: {err['msg']}"


class NotFoundError(Exception):
    """The request names something this tenant does not have (a request id, a variant): a 404
    whose message says what was not found."""
