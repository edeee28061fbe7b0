"""mailwright: a mail server for an application's own domain, with deliverability built in."""

__version__ = "0.1.0"
