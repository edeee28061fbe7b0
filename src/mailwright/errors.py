"""Exception hierarchy.

``UserError`` and its subclasses are mistakes a person can fix (a bad option, a
broken config file); the CLI prints them as one line and exits 2.  Everything
else is a bug or an operational failure.
"""

from __future__ import annotations


class MailwrightError(Exception):
    """Base of every exception mailwright raises on purpose."""


class UserError(MailwrightError):
    """A mistake the user can fix: printed as one line, exit code 2.

    ``message`` says what is wrong and where; ``hint`` says how to fix it.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class ConfigError(UserError):
    """The config file is missing, unparsable or has a bad value."""

    def __init__(self, path: str, key: str | None, problem: str, hint: str | None = None) -> None:
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {problem}", hint)
        self.path = path
        self.key = key
        self.problem = problem


class UsageError(UserError):
    """A bad command-line value (not an IP, not a domain, ...)."""
