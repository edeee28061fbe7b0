"""Every route declares who may call it; the open ones are exactly the few that must be,
and so are the ones a token in the path authorizes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailwright.certificates.store import CertificateStore
from mailwright.config import Config
from mailwright.http import Services, make_app
from mailwright.http.auth import OPEN, TOKEN, scope_of

OPEN_ROUTES = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/.well-known/acme-challenge/{token}"),  # the CA must reach it (RFC 8555 §8.3)
    ("GET", "/.well-known/mta-sts.txt"),  # every sender fetches our policy (RFC 8461 §3.3)
    ("GET", "/login"),  # the form, and posting it
    ("POST", "/login"),
    ("GET", "/ui/static/{name}"),  # the login page's stylesheet
}
TOKEN_ROUTES = {
    # RFC 8058 one-click unsubscribe: the provider POSTs without credentials (§3.2); the
    # HMAC token in the path is the credential, checked by the handler
    ("GET", "/unsubscribe/{token}"),
    ("POST", "/unsubscribe/{token}"),
}


def test_open_routes_are_exactly_these(tmp_path: Path) -> None:
    services = Services(
        config=lambda: Config(data_dir=tmp_path),
        store=Any,  # type: ignore[arg-type]
        tracking=None,
        smtp=None,
        logger=Any,  # type: ignore[arg-type]
    )
    app = make_app(CertificateStore(tmp_path), services)
    routes = {
        (route.method, route.resource.canonical if route.resource else "", scope_of(route.handler))
        for route in app.router.routes()
        if route.method != "HEAD"
    }
    opened = {(method, path) for method, path, scope in routes if scope == OPEN}
    assert opened == OPEN_ROUTES
    assert {(method, path) for method, path, scope in routes if scope == TOKEN} == TOKEN_ROUTES
    scopes = {path: scope for _, path, scope in routes if scope != OPEN}
    assert scopes["/v1/messages"] == "send" and scopes["/metrics"] == "metrics"
    assert scopes["/"] == "page" and scopes["/ui/messages/{queue_id}/{action}"] == "page"
