"""Errors that carry a message meant for the user, not a traceback."""


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
