"""The aiohttp application: routes and the app factory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from ..certificates.store import CertificateStore

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
"""RFC 8555 §8.3: where the CA fetches HTTP-01 key authorizations."""

MTA_STS_PATH = "/.well-known/mta-sts.txt"
"""RFC 8461 §3.2: where senders fetch our policy (on host mta-sts.DOMAIN)."""

STORE_KEY = web.AppKey("certificate_store", CertificateStore)
PolicyFor = Callable[[str], str | None]
"""Host name (``mta-sts.example.com``) → our MTA-STS policy text, or None."""
POLICY_KEY: web.AppKey[PolicyFor] = web.AppKey("mta_sts_policy")


def make_app(store: CertificateStore, mta_sts: PolicyFor | None = None) -> web.Application:
    """The application every ``http`` listener serves."""
    app = web.Application(client_max_size=1024)
    app[STORE_KEY] = store
    app[POLICY_KEY] = mta_sts or (lambda host: None)
    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get(CHALLENGE_PREFIX + "{token}", acme_challenge, allow_head=True)
    app.router.add_get(MTA_STS_PATH, mta_sts_policy, allow_head=True)
    return app


async def mta_sts_policy(request: web.Request) -> web.Response:
    """RFC 8461 §3.2/§3.3: the policy as text/plain, 200, only on ``mta-sts.DOMAIN``."""
    host = (request.host or "").rsplit(":", 1)[0].lower().rstrip(".")
    policy = request.app[POLICY_KEY](host)
    if policy is None:
        raise web.HTTPNotFound(text="no MTA-STS policy for this host\n")
    return web.Response(
        text=policy, content_type="text/plain", headers={"Cache-Control": "no-store"}
    )


async def healthz(request: web.Request) -> web.Response:
    """Alive: this worker's event loop answers."""
    return web.Response(text="ok\n")


async def acme_challenge(request: web.Request) -> web.Response:
    """RFC 8555 §8.3: the key authorization as ``application/octet-stream``."""
    store = request.app[STORE_KEY]
    token = request.match_info["token"]
    body = await asyncio.to_thread(store.challenge, token)
    if body is None:
        raise web.HTTPNotFound(text="no such challenge\n")
    return web.Response(body=body, content_type="application/octet-stream")
