"""The aiohttp application: routes, middlewares and the app factory.

Without :class:`Services` (``make_app(store)``) it serves ACME challenges and
``/healthz`` only; a worker passes its services and gets the API (:mod:`.api`) too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..certificates.store import CertificateStore
from . import api, monitoring, ui, unsubscribe
from .auth import ANY_KEY, OPEN, PAGE, TOKEN, bearer, json_error, requires, scope_of
from .services import API_KEY, SERVICES, STORE_KEY, Services
from .ui import page_session

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
"""RFC 8555 §8.3: where the CA fetches HTTP-01 key authorizations."""

MTA_STS_PATH = "/.well-known/mta-sts.txt"
"""RFC 8461 §3.2: where senders fetch our policy (on host mta-sts.DOMAIN)."""

PolicyFor = Callable[[str], str | None]
"""Host name (``mta-sts.example.com``) → our MTA-STS policy text, or None."""
POLICY_KEY: web.AppKey[PolicyFor] = web.AppKey("mta_sts_policy")


BODY_SLACK = 64 * 1024


def make_app(
    store: CertificateStore,
    services: Services | None = None,
    mta_sts: PolicyFor | None = None,
) -> web.Application:
    """The application every ``http`` listener serves."""
    if services is None:
        app = web.Application(client_max_size=1024, middlewares=[errors])
    else:
        config = services.config()
        limit = config.http.max_body or (config.message_size_limit * 4 // 3 + BODY_SLACK)
        app = web.Application(client_max_size=limit, middlewares=[errors, authenticate])
        app[SERVICES] = services

        api.add_routes(app)
        monitoring.add_routes(app)
        ui.add_routes(app)
        unsubscribe.add_routes(app)
    app[STORE_KEY] = store
    app[POLICY_KEY] = mta_sts or (lambda host: None)
    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get(CHALLENGE_PREFIX + "{token}", acme_challenge, allow_head=True)
    app.router.add_get(MTA_STS_PATH, mta_sts_policy, allow_head=True)
    return app


@requires(OPEN)
async def mta_sts_policy(request: web.Request) -> web.Response:
    """RFC 8461 §3.2/§3.3: the policy as text/plain, 200, only on ``mta-sts.DOMAIN``."""
    host = (request.host or "").rsplit(":", 1)[0].lower().rstrip(".")
    policy = request.app[POLICY_KEY](host)
    if policy is None:
        raise web.HTTPNotFound(text="no MTA-STS policy for this host\n")
    return web.Response(
        text=policy, content_type="text/plain", headers={"Cache-Control": "no-store"}
    )


def wants_json(request: web.Request) -> bool:
    """API errors are JSON; the pages people see (status page, unsubscribe) are HTML."""
    return request.path != "/" and not request.path.startswith(
        ("/ui", "/login", "/logout", "/unsubscribe/")
    )


@web.middleware
async def errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error as JSON for the API (the field named where there is one), never a
    traceback: an unexpected exception is logged and answered ``500``."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json" and wants_json(request):
            text = "request body too large" if exc.status == 413 else (exc.text or exc.reason)
            headers = {
                k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")
            }
            return web.json_response({"error": text.strip()}, status=exc.status, headers=headers)
        raise
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as exc:
        services = request.app.get(SERVICES)
        if services is not None:
            services.logger.event(
                "error", what="http", path=request.path[:200], reason=repr(exc)[:500]
            )
        return web.json_response({"error": "internal error"}, status=500)


@web.middleware
async def authenticate(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Each route's scope (:func:`.auth.requires`) checked before its handler runs."""
    match = request.match_info
    if match.http_exception is not None:  # 404, 405: nothing to protect
        raise match.http_exception
    scope = scope_of(match.handler)
    if scope in (OPEN, TOKEN):  # TOKEN: the handler checks the token in the path
        return await handler(request)
    services = request.app[SERVICES]
    if scope == PAGE:
        return await page_session(request, handler)
    ip = request.remote or "?"
    token = bearer(request)
    open_metrics = scope == "metrics" and services.config().http.metrics_open_to_trusted
    if open_metrics and "Authorization" not in request.headers and services.trusted(ip):
        return await handler(request)  # a key, when given, is checked (a mistake shows)
    if token is None:
        raise json_error(web.HTTPUnauthorized, "an API key is required (Authorization: Bearer KEY)")
    if services.limiter.blocked(ip):
        raise json_error(web.HTTPTooManyRequests, "too many failed attempts, try again later")
    key = services.keys().find(token)
    if key is None:
        services.logger.event("auth-failed", client=ip, mechanism="bearer")
        await asyncio.sleep(services.limiter.failed(ip))
        raise json_error(web.HTTPUnauthorized, "unknown API key")
    if scope != ANY_KEY and not key.allows(scope):
        raise json_error(web.HTTPForbidden, f"the key {key.name!r} lacks the {scope!r} scope")
    request[API_KEY] = key
    return await handler(request)


@requires(OPEN)
async def healthz(request: web.Request) -> web.Response:
    """Alive: this worker's event loop answers."""
    return web.Response(text="ok\n")


@requires(OPEN)
async def acme_challenge(request: web.Request) -> web.Response:
    """RFC 8555 §8.3: the key authorization as ``application/octet-stream``."""
    store = request.app[STORE_KEY]
    token = request.match_info["token"]
    body = await asyncio.to_thread(store.challenge, token)
    if body is None:
        raise web.HTTPNotFound(text="no such challenge\n")
    return web.Response(body=body, content_type="application/octet-stream")


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
