"""The aiohttp application: routes and the app factory."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..certificates.store import CertificateStore

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
"""RFC 8555 §8.3: where the CA fetches HTTP-01 key authorizations."""

STORE_KEY = web.AppKey("certificate_store", CertificateStore)


def make_app(store: CertificateStore) -> web.Application:
    """The application every ``http`` listener serves."""
    app = web.Application(client_max_size=1024)
    app[STORE_KEY] = store
    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get(CHALLENGE_PREFIX + "{token}", acme_challenge, allow_head=True)
    return app


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
