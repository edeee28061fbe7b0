"""One exception root: every public exception mailwright defines derives from MailwrightError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import mailwright
from mailwright.errors import MailwrightError


def _modules() -> list[str]:
    return [info.name for info in pkgutil.walk_packages(mailwright.__path__, "mailwright.")]


def test_every_public_exception_derives_from_mailwright_error() -> None:
    outside: list[str] = []
    for name in _modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == name
                and not attr.startswith("_")
                and not issubclass(value, MailwrightError)
            ):
                outside.append(f"{name}.{attr}")
    assert outside == []


def test_value_errors_stay_value_errors() -> None:
    """Callers that catch ValueError (syntax errors of records, addresses) still do."""
    from mailwright.dkim.keys import KeyRecordError
    from mailwright.smtp.address import AddressError
    from mailwright.spf.record import SpfSyntaxError

    for cls in (KeyRecordError, AddressError, SpfSyntaxError):
        assert issubclass(cls, ValueError)
        assert issubclass(cls, MailwrightError)
