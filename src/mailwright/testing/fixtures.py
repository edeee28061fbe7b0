"""pytest fixtures over :mod:`mailwright.testing` (loaded as a pytest plugin)."""
