"""Exceptions that eolab shows to users: a message naming the problem and a hint."""


class EolabError(Exception):
    """An error a user can act on. ``str()`` gives one line: problem, then hint."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(EolabError):
    """The configuration file or an override is invalid."""


class NoItemsError(EolabError):
    """A search found no items (as opposed to a provider that did not answer)."""


class ServiceError(EolabError):
    """A service of the stack could not be started, reached or stopped."""


class EolabWarning(UserWarning):
    """Something a user should know about a result (e.g. no cloud mask was possible)."""
