"""The command-line interface: a thin layer over the Python API.

Each command group lives in its own module and is loaded on demand by
:mod:`mailwright.cli.main`, so that ``mailwright explain`` does not import the
SMTP server.
"""
