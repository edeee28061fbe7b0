"""Who may call a route: API keys (``Authorization: Bearer``) with their scopes, and the
per-client failure limit shared in kind with SMTP AUTH
(:class:`~mailwright.smtp.auth.AuthLimiter`: each failure is answered later, and after
ten in ten minutes the address gets ``429`` without a check).

Each handler declares what it needs with :func:`requires` (a scope, :data:`OPEN`, or
:data:`PAGE` for the status page's session); a handler that declares nothing needs the
``admin`` scope — a route cannot be left open by forgetting. :data:`TOKEN` routes
carry their own credential: a token only the server can make."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

OPEN = "open"
"""No authentication: only ``/healthz``, ``/readyz`` and ACME challenges."""
TOKEN = "token"
"""Authorized by an HMAC token in the path, checked by the handler itself: RFC 8058
one-click unsubscribe links (:mod:`.unsubscribe`), which a mail provider POSTs to
without any credential (RFC 8058 §3.2)."""
ANY_KEY = "any-key"
"""Any valid API key, whatever its scopes (the OpenAPI document)."""
PAGE = "page"
"""The status page: its session cookie (else a redirect to the login form)."""

H = TypeVar("H", bound=Callable[..., Any])


def requires(scope: str) -> Callable[[H], H]:
    def mark(handler: H) -> H:
        handler.mailwright_scope = scope  # type: ignore[attr-defined]
        return handler

    return mark


def scope_of(handler: Any) -> str:
    return str(getattr(handler, "mailwright_scope", "admin"))


def bearer(request: web.Request) -> str | None:
    """The token of ``Authorization: Bearer TOKEN`` (RFC 6750 §2.1), or None."""
    header = request.headers.get("Authorization", "")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def json_error(cls: type[web.HTTPException], message: str, **extra: Any) -> web.HTTPException:
    headers = (
        {"WWW-Authenticate": 'Bearer realm="mailwright"'} if cls is web.HTTPUnauthorized else {}
    )
    return cls(
        text=json.dumps({"error": message, **extra}),
        content_type="application/json",
        headers=headers,
    )
