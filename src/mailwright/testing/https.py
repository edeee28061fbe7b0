"""An HTTPS server for MTA-STS policies in tests: one aiohttp app on loopback, in a thread.

It keeps every POST (TLS reports, RFC 8460 §5.4) in :attr:`posted`, and
answers ``GET /.well-known/mta-sts.txt`` by the ``Host`` header with what the test
set for that host: a body, a status, a media type, a delay (for timeouts), a redirect,
or a body larger than the 64 KB RFC 8461 §3.3 suggests. Its certificate comes from
:mod:`mailwright.testing.tls`, so a client that trusts that CA verifies it.

Usage::

    with PolicyWebServer(files.server_context()) as web:
        web.set("mta-sts.example.net", "version: STSv1\\nmode: enforce\\n...")
        ...PolicySource(..., port=web.port)...
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web

from .ports import free_port

HOST = "127.0.0.1"


@dataclass(frozen=True)
class PolicyAnswer:
    body: str = ""
    status: int = 200
    content_type: str = "text/plain"
    delay: float = 0.0
    location: str | None = None


class PolicyWebServer:
    """HTTPS on ``127.0.0.1:port``; :attr:`requests` counts the GETs per host."""

    def __init__(self, context: ssl.SSLContext, port: int | None = None) -> None:
        self.context = context
        self.port = port or free_port()
        self.answers: dict[str, PolicyAnswer] = {}
        self.requests: dict[str, int] = {}
        self.posted: list[tuple[str, str, bytes]] = []
        """(path, content type, body) of every POST (TLS reports, RFC 8460 §5.4)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def set(self, host: str, body: str = "", **kwargs: object) -> None:
        """What ``GET https://host/.well-known/mta-sts.txt`` answers (see :class:`PolicyAnswer`)."""
        self.answers[host.lower()] = PolicyAnswer(body, **kwargs)  # type: ignore[arg-type]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        host = (request.host or "").rsplit(":", 1)[0].lower()
        self.requests[host] = self.requests.get(host, 0) + 1
        answer = self.answers.get(host)
        if answer is None or request.path != "/.well-known/mta-sts.txt":
            return web.Response(status=404, text="not found")
        if answer.delay:
            await asyncio.sleep(answer.delay)
        headers = {"Location": answer.location} if answer.location else None
        return web.Response(
            status=answer.status,
            body=answer.body.encode(),
            headers=headers,
            content_type=answer.content_type,
        )

    async def _post(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.posted.append((request.path, request.headers.get("Content-Type", ""), body))
        return web.Response(status=201, text="thanks\n")

    def start(self) -> PolicyWebServer:
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def serve() -> None:
            app = web.Application(client_max_size=16 * 1024 * 1024)
            app.router.add_get("/{tail:.*}", self._handle)
            app.router.add_post("/{tail:.*}", self._post)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, HOST, self.port, ssl_context=self.context)
            await site.start()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(serve())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="policy-web", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the policy web server did not start")
        return self

    def stop(self) -> None:
        loop, runner = self._loop, self._runner
        if loop is None:
            return
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()
        self._loop = None

    def __enter__(self) -> PolicyWebServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
