"""Errors that carry a message meant for the user, not a traceback."""


class InputError(Exception):
    """Bad input from the user: the message says what to fix. CLIs print it as one line."""


class ModelMismatchError(InputError):
    """An index was opened with another embedding model than the one it was built with."""


class IndexNotReadyError(Exception):
    """No published index can be loaded yet; the message says why."""
